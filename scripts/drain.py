#!/usr/bin/env python3
"""Push drain and pull drain of one backlog, as a new user would run them (issue 14).

Three release-build regions as processes on this machine: eu-west holds a backlog of N customers
written through its public API while its scheduler is stopped; then
  - push: eu-west's scheduler delivers its stream to us-east (us-east only serves);
  - pull: ap-south's scheduler reads eu-west's feed (eu-west's scheduler stopped; ap-south held a
    cursor from before the backlog, so it reads the feed, not a snapshot).
Each drain is timed from the scheduler's start until the receiver holds N rows.

  scripts/drain.py [--rows 100000] [--backend sqlite|mysql|postgres|both|all]
                   [--bin target/release/regionsync] [--page-limit 500] [--bulk 1000]
                   [--load-only] [--only push|pull] [--repeat N]
                   [--pouchdb [--pouchdb-adapter auto|leveldb|memory]]

both = SQLite and MariaDB, all = SQLite, MariaDB and PostgreSQL; with several backends the runs
are interleaved (run 1 of each, then run 2 of each, …) so that they see the same machine noise.
MariaDB: --mysql mysql://root@127.0.0.1:3306 (databases rs_drain_* are created and dropped with
`mariadb`). PostgreSQL: --pg postgres://postgres@127.0.0.1:5432 (the same with `psql`; default:
TEST_PG_URL's server).
Prints rows/s of each drain and their ratio (pull ÷ push, issue 14's B12), and with SQLite in
the run, each server's push ÷ SQLite's push (B13 for MariaDB).
--pouchdb: after each round of our drains, one PouchDB HTTP replication of as many docs shaped
like these customers (scripts/pouchdb/drain.js, Node; `npm ci` there when node_modules is
missing or older than package-lock.json), the reference of issue 14's goal: prints its median
docs/s and each backend's push ÷ PouchDB and pull ÷ PouchDB (bar ≥ 5 for MariaDB).
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REGIONS = ["eu-west", "us-east", "ap-south"]
POUCHDB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pouchdb")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mysql(sql, server):
    host, port = server.split("//")[1].split("@")[1].split(":")
    subprocess.run(["mariadb", "--protocol=tcp", f"-h{host}", f"-P{port}", "-uroot", "-N", "-e", sql],
                   check=True, capture_output=True, text=True)


def psql(sql, server, db="postgres", check=True):
    """Each statement of `sql` (a list) sent alone (CREATE/DROP DATABASE refuse a transaction
    block); the output, unaligned and without headers."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", f"{server}/{db}"]
    for stmt in sql:
        cmd += ["-c", stmt]
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def count_rows(url, args):
    if url.startswith("sqlite://"):
        try:
            con = sqlite3.connect(url[len("sqlite://"):], timeout=5)
            n = con.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
            con.close()
            return n
        except sqlite3.OperationalError:
            return 0
    db = url.rsplit("/", 1)[1]
    if url.startswith("postgres"):
        try:
            return int(psql(["SELECT COUNT(*) FROM customers"], args.pg, db, check=False).strip())
        except ValueError:
            return 0
    host, port = args.mysql.split("//")[1].split("@")[1].split(":")
    out = subprocess.run(["mariadb", "--protocol=tcp", f"-h{host}", f"-P{port}", "-uroot", "-N", "-e",
                          f"SELECT COUNT(*) FROM `{db}`.customers"], capture_output=True, text=True)
    try:
        return int(out.stdout.strip())
    except ValueError:
        return 0


def wait_ready(port, within=60):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"region on {port} not ready within {within}s")


def load(port, rows, clients=16, bulk=0):
    """N customers through eu-west's public API, `clients` keep-alive connections; `bulk` > 0:
    that many per request (`POST /api/v1/customers:batch`), else one per `POST`."""
    per = rows // clients
    errors = []

    def customer(k, i):
        return {"tenant_id": "t1", "name": f"customer {k}-{i}", "email": f"c{k}.{i}@example.com"}

    def post(conn, path, body):
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        res = conn.getresponse()
        res.read()
        if res.status != 201:
            errors.append(res.status)
        return res.status == 201

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = range(per if k < clients - 1 else rows - per * (clients - 1))
        if bulk:
            for start in range(0, len(mine), bulk):
                items = [customer(k, i) for i in mine[start:start + bulk]]
                if not post(conn, "/api/v1/customers:batch", {"items": items}):
                    return
            return
        for i in mine:
            if not post(conn, "/api/v1/customers", customer(k, i)):
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"the load failed: {errors[:3]}")
    return rows / (time.time() - started)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--backend", type=backend_arg, default="sqlite",
                    help="sqlite, mysql, postgres or a comma list of them (sqlite,postgres); "
                         "both: sqlite,mysql; all: sqlite,mysql,postgres")
    ap.add_argument("--repeat", type=int, default=1, help="runs per backend (medians printed)")
    test_url = os.environ.get("TEST_MYSQL_URL", "").strip()
    ap.add_argument("--mysql", default=test_url.rsplit("/", 1)[0] if test_url.count("/") > 2
                    else "mysql://root@127.0.0.1:3306", help="the server (default: TEST_MYSQL_URL's)")
    pg_url = os.environ.get("TEST_PG_URL", "").strip()
    ap.add_argument("--pg", default=pg_url.rsplit("/", 1)[0] if pg_url.count("/") > 2
                    else "postgres://postgres@127.0.0.1:5432",
                    help="the PostgreSQL server (default: TEST_PG_URL's)")
    ap.add_argument("--bin", default="target/release/regionsync")
    ap.add_argument("--page-limit", type=int, default=500)
    ap.add_argument("--bulk", type=int, default=0,
                    help="load the backlog N customers per request (POST /api/v1/customers:batch)")
    ap.add_argument("--load-only", action="store_true", help="measure the load, not the drains")
    ap.add_argument("--only", choices=["push", "pull"], help="one of the two drains")
    ap.add_argument("--compression", choices=["on", "off", "ab"], default="on",
                    help="sync.compression of the regions; ab: each run with it on, then off "
                         "(B14b: drain rate gzip ÷ plain)")
    ap.add_argument("--pouchdb", action="store_true",
                    help="one PouchDB HTTP replication of as many docs per round, the reference "
                         "of issue 14's goal (scripts/pouchdb/drain.js; needs node and npm)")
    ap.add_argument("--pouchdb-adapter", choices=["auto", "leveldb", "memory"], default="auto",
                    help="PouchDB's adapter on both sides; auto: LevelDB, memory if leveldown "
                         "does not load")
    args = ap.parse_args()
    if args.pouchdb and (args.load_only or args.compression == "ab"):
        ap.error("--pouchdb goes with the drains, not with --load-only or --compression ab")
    if args.pouchdb:
        missing = pouchdb_missing()
        if missing:
            print(f"--pouchdb: {missing}", file=sys.stderr)
            return 1
    if args.compression == "ab":
        return compare_compression(args)
    backends = backend_list(args.backend)
    results = {b: [] for b in backends}
    pouch = []
    for i in range(args.repeat):
        for backend in backends:  # interleaved: both backends see the same machine noise
            args.backend = backend
            results[backend].append(run_once(args))
        if args.pouchdb:  # and the reference in the same round
            pouch.append(pouchdb_once(args, i))
    if args.load_only:
        return
    med = lambda xs: statistics.median(xs)
    print(f"\nmedians of {args.repeat} run(s), {args.rows} rows, pull_page_limit {args.page_limit}:")
    print("| backend | push drain rows/s | pull drain rows/s | B12 pull ÷ push (≥ 0.9) |")
    print("|---|---|---|---|")
    for b in backends:
        push, pull = med([r[0] for r in results[b]]), med([r[1] for r in results[b]])
        ratios = [r[1] / r[0] for r in results[b]]
        print(f"| {b} | {push:,.0f} | {pull:,.0f} | {med(ratios):.2f} (min {min(ratios):.2f}) |")
    if "sqlite" in backends and "mysql" in backends:
        ratios = [m[0] / s[0] for s, m in zip(results["sqlite"], results["mysql"])]
        print(f"B13 MariaDB push ÷ SQLite push (≥ 0.5): {med(ratios):.2f} (min {min(ratios):.2f})")
    if "sqlite" in backends and "postgres" in backends:
        ratios = [p[0] / s[0] for s, p in zip(results["sqlite"], results["postgres"])]
        print(f"PostgreSQL push ÷ SQLite push (B13's bar ≥ 0.5): {med(ratios):.2f} "
              f"(min {min(ratios):.2f})")
    if pouch:
        pouchdb_summary(args, backends, results, pouch)


def pouchdb_missing():
    """Why the PouchDB reference cannot run (node, npm or its packages missing), or None; runs
    `npm ci` in scripts/pouchdb when node_modules is missing or older than package-lock.json."""
    for tool in ["node", "npm"]:
        if not shutil.which(tool):
            return f"`{tool}` is not on PATH: install Node.js 20 (and npm) to measure the reference"
    lock = os.path.join(POUCHDB_DIR, "package-lock.json")
    installed = os.path.join(POUCHDB_DIR, "node_modules", ".package-lock.json")
    if not os.path.exists(installed) or os.path.getmtime(installed) < os.path.getmtime(lock):
        print(f"npm ci --prefix {POUCHDB_DIR}", flush=True)
        out = subprocess.run(["npm", "ci", "--prefix", POUCHDB_DIR, "--no-audit", "--no-fund"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return f"`npm ci` in {POUCHDB_DIR} failed: {(out.stderr or out.stdout).strip()[-2000:]}"
    return None


def pouchdb_once(args, round_no):
    """One run of scripts/pouchdb/drain.js: {batch size: docs/s, "adapter": …, "note": …}; the
    order of its two replications (PouchDB's default batch size, 500) alternates by round."""
    sizes = "default,500" if round_no % 2 == 0 else "500,default"
    out = subprocess.run(["node", os.path.join(POUCHDB_DIR, "drain.js"), "--docs", str(args.rows),
                          "--batch-sizes", sizes, "--adapter", args.pouchdb_adapter],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"the PouchDB reference failed: {out.stderr.strip()[-2000:]}")
    run = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        run["adapter"], run["note"] = r["adapter"], r["adapter_note"]
        if r["default_batch_size"]:
            run["default"], run["default_size"] = r["docs_per_s"], r["batch_size"]
        else:
            run[r["batch_size"]] = r["docs_per_s"]
        print(f"PouchDB HTTP replication, {r['adapter']}, batch_size {r['batch_size']}"
              f"{' (default)' if r['default_batch_size'] else ''}: {r['docs_per_s']:,} docs/s "
              f"({r['docs']} docs in {r['seconds']:.1f} s)")
    return run


def pouchdb_summary(args, backends, results, pouch):
    """The reference's medians and our drains ÷ it, round by round (issue 14: MariaDB ≥ 5×)."""
    med = statistics.median
    adapters = sorted({p["adapter"] for p in pouch})
    print(f"\nPouchDB reference (issue 14), medians of {len(pouch)} run(s), {args.rows} docs, "
          f"PouchDB {', '.join(adapters)} adapter on both sides ({pouch[0]['note']}), "
          f"replicating from express-pouchdb over HTTP on 127.0.0.1:")
    print(f"  batch_size {pouch[0]['default_size']} (PouchDB's default, the reference): "
          f"{med([p['default'] for p in pouch]):,.0f} docs/s; "
          f"batch_size 500 (our page): {med([p[500] for p in pouch]):,.0f} docs/s")
    print("| backend | push ÷ PouchDB | pull ÷ PouchDB | push ÷ PouchDB at 500 | pull ÷ PouchDB at 500 "
          "| bar |")
    print("|---|---|---|---|---|---|")
    for b in backends:
        cells = []
        for k, ref in [(0, "default"), (1, "default"), (0, 500), (1, 500)]:
            ratios = [r[k] / p[ref] for r, p in zip(results[b], pouch) if r[k] == r[k]]
            cells.append(f"{med(ratios):.2f} (min {min(ratios):.2f})" if ratios else "–")
        bar = "≥ 5 (issue 14)" if b == "mysql" else "–"
        print(f"| {b} | {' | '.join(cells)} | {bar} |")
    if "mysql" in backends:
        ref = med([p["default"] for p in pouch])
        push, pull = (med([r[k] for r in results["mysql"]]) for k in (0, 1))
        met = lambda x: "yes" if x >= 5 * ref and x >= 35_000 else "no"
        print(f"issue 14 (MariaDB ≥ 35 K rows/s and ≥ 5× PouchDB's {ref:,.0f} docs/s): "
              f"push {push:,.0f} rows/s {met(push)}, pull {pull:,.0f} rows/s {met(pull)}")


BACKENDS = ["sqlite", "mysql", "postgres"]


def backend_list(backend):
    """The backends of --backend, in the order each round runs them."""
    named = {"both": "sqlite,mysql", "all": ",".join(BACKENDS)}.get(backend, backend)
    return [b for b in BACKENDS if b in named.split(",")]


def backend_arg(value):
    if value in ("both", "all") or all(n in BACKENDS for n in value.split(",")):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r}: sqlite, mysql, postgres, a comma list of them, both or all")


def compare_compression(args):
    """B14b: the drains with sync.compression on ÷ off, interleaved runs, per backend."""
    backends = backend_list(args.backend)
    results = {(b, m): [] for b in backends for m in ["on", "off"]}
    for _ in range(args.repeat):
        for backend in backends:
            for mode in ["on", "off"]:
                args.backend, args.compression = backend, mode
                print(f"-- {backend}, sync.compression {mode}")
                results[(backend, mode)].append(run_once(args))
    med = statistics.median
    print(f"\nB14b medians of {args.repeat} run(s), {args.rows} rows: drain rate gzip ÷ plain (bar ≥ 0.9)")
    print("| backend | drain | gzip rows/s | plain rows/s | gzip ÷ plain |")
    print("|---|---|---|---|---|")
    for b in backends:
        for k, what in [(0, "push"), (1, "pull")]:
            on = [r[k] for r in results[(b, "on")]]
            off = [r[k] for r in results[(b, "off")]]
            ratios = [x / y for x, y in zip(on, off)]
            print(f"| {b} | {what} | {med(on):,.0f} | {med(off):,.0f} | {med(ratios):.2f} (min {min(ratios):.2f}) |")


def run_once(args):
    """One load and both drains on args.backend: (push rows/s, pull rows/s)."""
    bin_path = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="regionsync-drain-")
    ports = {r: free_port() for r in REGIONS}
    dbs = {}
    for r in REGIONS:
        name = f"rs_drain_{r.replace('-', '_')}_{os.getpid()}"
        if args.backend == "sqlite":
            dbs[r] = f"sqlite://{work}/{r}.db"
        elif args.backend == "postgres":
            psql([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'],
                 args.pg)
            dbs[r] = f"{args.pg}/{name}"
        else:
            mysql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`", args.mysql)
            dbs[r] = f"{args.mysql}/{name}"
    procs = []

    def config(region, broker_section, peers):
        path = f"{work}/{region}.toml"
        with open(path, "w") as f:
            f.write(f'region_id = "{region}"\n[http]\nbind = "127.0.0.1:{ports[region]}"\n'
                    f'[database]\nurl = "{dbs[region]}"\n[broker]\n{broker_section}'
                    f'[sync]\npull_interval_secs = 1\npull_page_limit = {args.page_limit}\n'
                    f'dispatch_interval_secs = 1\n'
                    f'compression = {"false" if args.compression == "off" else "true"}\n{peers}')
        return path

    def start(cfg, *cmd, name):
        log = open(f"{work}/{name}.log", "a")
        p = subprocess.Popen([bin_path, "--config", cfg, *cmd], stdout=log, stderr=log,
                             env={**os.environ, "RUST_LOG": "warn"})
        procs.append(p)
        return p

    def stop(p):
        p.terminate()
        p.wait(30)

    try:
        a = config("eu-west",
                   f'enabled = true\npublic_url = "http://127.0.0.1:{ports["eu-west"]}"\n'
                   f'signing_key_file = "{work}/key.pem"\n',
                   '[[sync.peers]]\nid = "us-east"\npull = false\n'
                   '[[sync.peers]]\nid = "ap-south"\npush = false\npull = false\n')
        creds = {}
        for r in ["us-east", "ap-south"]:
            out = subprocess.run([bin_path, "--config", a, "broker", "regions", "add", r,
                                  f"http://127.0.0.1:{ports[r]}"], capture_output=True, text=True)
            cred = [w for w in out.stdout.split() if w.startswith("rsc_")]
            if not cred:
                raise SystemExit(f"no credential for {r}: {out.stdout} {out.stderr}")
            creds[r] = cred[0]
        remote = lambda r: (f'enabled = false\nurl = "http://127.0.0.1:{ports["eu-west"]}"\n'
                            f'credential = "{creds[r]}"\npublic_url = "http://127.0.0.1:{ports[r]}"\n')
        b = config("us-east", remote("us-east"), "")
        c = config("ap-south", remote("ap-south"), '[[sync.peers]]\nid = "eu-west"\npush = false\n')

        web_a = start(a, "serve", name="eu-west")
        wait_ready(ports["eu-west"])
        web_b = start(b, "serve", name="us-east")
        web_c = start(c, "serve", name="ap-south")
        wait_ready(ports["us-east"])
        wait_ready(ports["ap-south"])
        # ap-south takes its cursor into eu-west's (empty) feed: a snapshot of nothing.
        sched_c = start(c, "schedule", "work", name="ap-south-scheduler")
        time.sleep(4)
        stop(sched_c)

        if args.backend == "mysql":
            host, port = args.mysql.split("//")[1].split("@")[1].split(":")
            settings = subprocess.run(
                ["mariadb", "--protocol=tcp", f"-h{host}", f"-P{port}", "-uroot", "-N", "-e",
                 "SELECT @@version, @@innodb_flush_log_at_trx_commit, @@log_bin, @@sync_binlog, "
                 "@@tx_isolation, @@innodb_lock_wait_timeout, @@innodb_buffer_pool_size DIV 1048576"],
                capture_output=True, text=True).stdout.split()
            names = ["version", "innodb_flush_log_at_trx_commit", "log_bin", "sync_binlog",
                     "server tx_isolation (regionsync sets READ COMMITTED per session)",
                     "innodb_lock_wait_timeout", "innodb_buffer_pool_size MiB"]
            print("server: " + ", ".join(f"{n}={v}" for n, v in zip(names, settings)))
        if args.backend == "postgres":
            names = ["server_version", "synchronous_commit", "fsync", "wal_level",
                     "default_transaction_isolation", "shared_buffers"]
            settings = psql(["SELECT " + ", ".join(f"current_setting('{n}')" for n in names)],
                            args.pg).strip().split("|")
            print("server: " + ", ".join(f"{n}={v}" for n, v in zip(names, settings)))
        rate = load(ports["eu-west"], args.rows, bulk=args.bulk)
        how = f"{args.bulk} per request" if args.bulk else "one per request"
        print(f"loaded {args.rows} customers at eu-west ({args.backend}): {rate:,.0f} writes/s "
              f"through the API, 16 clients, {how}")
        if args.load_only:
            return (0.0, 0.0)

        def drain(cfg, name, receiver, what):
            t0 = time.time()
            sched = start(cfg, "schedule", "work", name=name)
            while count_rows(dbs[receiver], args) < args.rows:
                time.sleep(0.2)
                if time.time() - t0 > 900:
                    raise SystemExit(f"{what} did not finish in 15 minutes")
            rate = args.rows / (time.time() - t0)
            stop(sched)
            print(f"{what}: {rate:,.0f} rows/s")
            return rate

        push = pull = float("nan")
        if args.only != "pull":
            push = drain(a, "eu-west-scheduler", "us-east", "push drain eu-west → us-east")
        if args.only != "push":
            pull = drain(c, "ap-south-scheduler", "ap-south", "pull drain ap-south ← eu-west")
        print(f"pull ÷ push: {pull / push:.2f}")
        return (push, pull)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(30)
        if args.backend == "mysql":
            for r in REGIONS:
                mysql(f"DROP DATABASE IF EXISTS `{dbs[r].rsplit('/', 1)[1]}`", args.mysql)
        if args.backend == "postgres":
            for r in REGIONS:
                psql([f'DROP DATABASE IF EXISTS "{dbs[r].rsplit("/", 1)[1]}" WITH (FORCE)'], args.pg)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
