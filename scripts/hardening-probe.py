#!/usr/bin/env python3
"""Issue 12's findings, tried as an attacker would against two release-build regions on loopback.

    scripts/hardening-probe.py [BINARY]     (default target/release/regionsync)

Starts region eu-west (the broker) and region us-east as separate processes in a temporary
directory, registers a third region `x` that never runs, and prints one line per probe: what the
service answered, how large the answer was, and how much log it wrote. Standard library only;
nothing but 127.0.0.1 is contacted. Used for the before/after table in the issue's closing note.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/regionsync")
A_PORT, B_PORT = 18180, 18182
MIB = 1024 * 1024


def free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start(dir_, name, port, broker):
    os.makedirs(dir_, exist_ok=True)
    conf = os.path.join(dir_, "region.toml")
    with open(conf, "w") as f:
        f.write(f'region_id = "{name}"\n[http]\nbind = "127.0.0.1:{port}"\n')
        f.write(f'[database]\nurl = "sqlite://{dir_}/region.db"\n')
        f.write(f'[broker]\nsigning_key_file = "{dir_}/key.pem"\n')
        if broker:
            f.write("enabled = true\n")
        else:
            f.write(f'enabled = false\nurl = "http://127.0.0.1:{A_PORT}"\ncredential = "{broker_cred}"\n')
    log = open(os.path.join(dir_, "log"), "wb")
    p = subprocess.Popen([BIN, "--config", conf, "serve"], stdout=log, stderr=log, cwd=dir_)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1)
            return p, conf, os.path.join(dir_, "log")
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not start; see {dir_}/log")


def cli(conf, *args):
    return subprocess.run([BIN, "--config", conf, *args], capture_output=True, text=True)


def raw(port, data, wait=5.0):
    """Send raw bytes; return (first line of the answer, its length, seconds until answer/close)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(wait)
    t = time.time()
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and (b"content-length: 0" in out.lower() or out.endswith(b"}")):
                break
    except socket.timeout:
        return "(no answer, still open)", 0, time.time() - t
    except ConnectionResetError:
        return "(reset)", 0, time.time() - t
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return (head.split(b"\r\n")[0].decode() + " " + body[:90].decode(errors="replace")), len(out), time.time() - t


def http(port, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
            return r.status, data
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def code(data):
    try:
        return json.loads(data).get("error")
    except Exception:
        return data[:40]


def main():
    global broker_cred
    if not (free(A_PORT) and free(B_PORT)):
        raise SystemExit(f"ports {A_PORT}/{B_PORT} are taken")
    root = tempfile.mkdtemp(prefix="rs-probe-")
    broker_cred = ""
    a, a_conf, a_log = start(f"{root}/a", "eu-west", A_PORT, True)
    procs = [a]
    try:
        add = cli(a_conf, "broker", "regions", "add", "us-east", f"http://127.0.0.1:{B_PORT}")
        broker_cred = [w for w in add.stdout.split() if w.startswith("rsc_")][0]
        cli(a_conf, "broker", "regions", "add", "x", "http://127.0.0.1:18199")
        b, b_conf, _ = start(f"{root}/b", "us-east", B_PORT, False)
        procs.append(b)
        token = cli(a_conf, "broker", "token", "eu-west", "--as", "x").stdout.strip()
        auth = {"Authorization": f"Bearer {token}", "content-type": "application/json"}

        def log_size():
            return os.path.getsize(a_log)

        def row(name, status, c, size, logged, extra=""):
            print(f"{name:<46} {status!s:>4} {c!s:<26} answer {size:>9} B  log +{logged:>9} B {extra}")

        # 1. a push speaking for another origin
        def op(origin, hlc_ms):
            eid = "0193a000-0000-7000-8000-00000000000" + ("1" if origin == "us-east" else "2")
            return {
                "op_id": f"{origin}-1", "entity_id": eid, "kind": "upsert",
                "hlc": hlc_ms << 16, "origin": origin,
                "payload": {"id": eid, "tenant_id": "acme", "name": "Forged", "email": "f@example.com",
                            "status": "active", "created_at": "2026-12-01T00:00:00Z",
                            "updated_at": "2026-12-01T00:00:00Z", "deleted_at": None},
            }
        now = int(time.time() * 1000)
        for origin in ["us-east", "eu-west"]:
            body = {"source_region": "x", "batch_id": f"forge-{origin}", "schema_version": 1,
                    "ops": [op(origin, now)]}
            before = log_size()
            st, data = http(A_PORT, "POST", "/sync/customers/ops", json.dumps(body).encode(), auth)
            row(f"1 push x -> eu-west, origin={origin}", st, code(data) or "applied?", len(data), log_size() - before)

        # 2. amplification
        big = "k" * MIB
        cases = [
            ("2 customers POST, 1 MiB key", "/api/v1/customers", {"content-type": "application/json"},
             json.dumps({big: 1, "tenant_id": "t", "name": "n", "email": "a@b.c"})),
            ("2 resolve, 1 MiB target_region", "/api/v1/broker/resolve",
             {"Authorization": f"Bearer {broker_cred}", "content-type": "application/json"},
             json.dumps({"target_region": big})),
            ("2 ops, unknown 1 MiB field", "/sync/customers/ops", auth,
             json.dumps({"source_region": "x", "batch_id": "b", "schema_version": 1, "ops": [], big: 1})),
        ]
        for name, path, hdrs, body in cases:
            before = log_size()
            st, data = http(A_PORT, "POST", path, body.encode(), hdrs)
            time.sleep(0.2)
            row(name, st, code(data), len(data), log_size() - before)

        # 3. body timeouts
        for name, data in [
            ("3 body announced, never sent", b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"),
            ("3 chunked body that never ends", b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n"),
        ]:
            before = log_size()
            line, size, secs = raw(A_PORT, data, wait=12)
            row(name, "", line[:26], size, log_size() - before, f"after {secs:.1f} s")

        # 4. parser-level errors
        for name, data in [
            ("4 conflicting Content-Length", b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}"),
            ("4 Content-Length + Transfer-Encoding", b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
            ("4 100 KB URI", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("4 300 headers", b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + b"".join(b"x-h%d: 1\r\n" % i for i in range(300)) + b"\r\n"),
        ]:
            before = log_size()
            line, size, secs = raw(A_PORT, data)
            time.sleep(0.2)
            with open(a_log, "rb") as f:
                f.seek(before)
                errors = f.read().count(b"ERROR")
            row(name, "", line[:60], size, log_size() - before, f"ERROR lines {errors}")

        # 7. documented errors
        for name, method, path, body, hdrs in [
            ("7 customers ?bogus=1", "GET", "/api/v1/customers?tenant_id=acme&bogus=1", None, {}),
            ("7 customers ?after=not-a-uuid", "GET", "/api/v1/customers?tenant_id=acme&after=not-a-uuid", None, {}),
            ("7 customers ?limit=abc", "GET", "/api/v1/customers?tenant_id=acme&limit=abc", None, {}),
            ("7 feed ?limit=-1", "GET", "/sync/customers/changes?limit=-1", None, auth),
            ("7 feed ?limit=10^12", "GET", "/sync/customers/changes?limit=1000000000000", None, auth),
            ("7 ops: array nested 200 deep", "POST", "/sync/customers/ops", b"[" * 200 + b"]" * 200, auth),
            ("7 resolve: array nested 200 deep", "POST", "/api/v1/broker/resolve", b"[" * 200 + b"]" * 200,
             {"Authorization": f"Bearer {broker_cred}", "content-type": "application/json"}),
            ("7 GET /api/v1/broker/resolve", "GET", "/api/v1/broker/resolve", None, {}),
        ]:
            st, data = http(A_PORT, method, path, body, hdrs)
            row(name, st, code(data), len(data), 0)
        # 1 (effect): what eu-west now holds that us-east never will
        st, data = http(A_PORT, "GET", "/api/v1/customers?tenant_id=acme", None, {})
        print(f"1 eu-west holds {len(json.loads(data).get('items', json.loads(data).get('data', [])) if st == 200 else '?')} forged customer(s)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


if __name__ == "__main__":
    main()
