#!/usr/bin/env node
// Issue 14's reference: a PouchDB HTTP replication of the same backlog that scripts/drain.py
// drains between regionsync regions.
//
//   node scripts/pouchdb/drain.js [--docs 100000] [--batch-sizes default,500]
//                                 [--adapter auto|leveldb|memory]
//
// A source PouchDB, served over HTTP on loopback by express-pouchdb in a child process (as our
// regions are processes of their own), is loaded with N docs shaped like drain.py's customers
// (the customers sync payload's fields and sizes, `_id` = the customer id, a UUID v7); loading
// is not timed. Then, for each batch size in the order given, a fresh target PouchDB in this
// process runs `PouchDB.replicate(remoteUrl, target, {batch_size})`, timed from the call to
// `complete`. One JSON line per replication on stdout:
//   {"docs", "seconds", "docs_per_s", "adapter", "batch_size", "default_batch_size", ...}
// `default` = PouchDB's own default (100 in 9.x): the reference of issue 14.
//
// Adapter: `auto` (the default) uses LevelDB (leveldown, whose prebuilt binary ships inside its
// npm package) on both sides, on disk in a temporary directory, and falls back to the in-memory
// adapter (memdown) on both sides, saying why in the JSON, when leveldown does not load.
'use strict';

const { fork } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

// Which adapter to use on both sides: leveldb when leveldown loads (and was not refused),
// else memory. Returns {adapter, note}.
function chooseAdapter(wanted) {
  if (wanted === 'memory') return { adapter: 'memory', note: 'memory asked for (--adapter memory)' };
  try {
    require('leveldown');
    return { adapter: 'leveldb', note: 'leveldown loaded (prebuilt binary from its npm package)' };
  } catch (e) {
    if (wanted === 'leveldb') throw e;
    return { adapter: 'memory', note: `leveldown did not load (${String(e.message).split('\n')[0]}): memdown on both sides` };
  }
}

// The PouchDB constructor for the source's server (every database it opens on `adapter`, under
// `dir`) and the options of a local database of the target side. LevelDB: the `pouchdb` package
// (its Node build: core, LevelDB, HTTP, map/reduce, replication). Memory: the same 9.x parts
// without LevelDB (the `pouchdb` package loads leveldown as it loads), memdown instead.
function pouchFor(adapter, dir) {
  if (adapter === 'memory') {
    const PouchDB = require('pouchdb-core')
      .plugin(require('pouchdb-adapter-http'))
      .plugin(require('pouchdb-mapreduce'))
      .plugin(require('pouchdb-replication'))
      .plugin(require('pouchdb-adapter-memory'));
    return { PouchDB, local: { adapter: 'memory' } };
  }
  fs.mkdirSync(dir, { recursive: true });
  return { PouchDB: require('pouchdb'), local: { adapter: 'leveldb', prefix: dir + path.sep } };
}

// A UUID v7 (lowercase, hyphenated), as a region makes a customer's id.
function uuidv7(ms) {
  const b = crypto.randomBytes(16);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// RFC 3339, UTC, six fraction digits, `Z`: the sync payload's timestamp form.
function stamp(ms) {
  return new Date(ms).toISOString().replace('Z', '000Z');
}

// drain.py's load: 16 clients, client k's i-th customer; the server adds id, status and the
// timestamps. Fields as in the customers sync payload (containers/customers/src/models/payload.rs),
// `id` carried as `_id`.
function customers(n, clients = 16) {
  const per = Math.floor(n / clients);
  const docs = [];
  let ms = Date.now();
  for (let k = 0; k < clients; k++) {
    const mine = k < clients - 1 ? per : n - per * (clients - 1);
    for (let i = 0; i < mine; i++) {
      const t = stamp(ms);
      docs.push({
        _id: uuidv7(ms),
        tenant_id: 't1',
        name: `customer ${k}-${i}`,
        email: `c${k}.${i}@example.com`,
        status: 'active',
        created_at: t,
        updated_at: t,
        deleted_at: null,
      });
      if (docs.length % 64 === 0) ms += 1;
    }
  }
  return docs;
}

// The child: the source database, loaded, then served over HTTP on 127.0.0.1.
async function serve() {
  const { adapter, note } = chooseAdapter(arg('adapter', 'auto'));
  const dir = arg('dir');
  const n = parseInt(arg('docs', '100000'), 10);
  const { PouchDB: Base, local } = pouchFor(adapter, path.join(dir, 'server'));
  const PouchDB = Base.defaults(local);
  const db = new PouchDB('customers');
  const docs = customers(n);
  const t0 = Date.now();
  for (let i = 0; i < docs.length; i += 1000) {
    const res = await db.bulkDocs(docs.slice(i, i + 1000));
    const bad = res.find((r) => r.error);
    if (bad) throw new Error(`load failed: ${JSON.stringify(bad)}`);
  }
  const loadSecs = (Date.now() - t0) / 1000;
  const bytes = JSON.stringify(docs.slice(0, 1000)).length / 1000;
  const app = require('express')();
  app.use('/', require('express-pouchdb')(PouchDB, {
    mode: 'minimumForPouchDB',
    inMemoryConfig: true,
    logPath: path.join(dir, 'log.txt'),
  }));
  const server = app.listen(0, '127.0.0.1', () => {
    process.send({ port: server.address().port, adapter, note, loadSecs, docBytes: bytes });
  });
  process.on('message', (m) => {
    if (m === 'stop') server.close(() => process.exit(0));
  });
}

async function main() {
  const n = parseInt(arg('docs', '100000'), 10);
  const sizes = arg('batch-sizes', 'default,500').split(',');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'regionsync-pouchdb-'));
  const child = fork(__filename, ['serve', '--docs', String(n), '--dir', dir,
    '--adapter', arg('adapter', 'auto')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ready = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the source server exited (${code})`)));
    });
    child.removeAllListeners('exit');
    const { PouchDB, local } = pouchFor(ready.adapter, path.join(dir, 'client'));
    const remote = `http://127.0.0.1:${ready.port}/customers`;
    const meta = require('pouchdb-core/package.json').version;
    for (const [k, size] of sizes.entries()) {
      const target = new PouchDB(`target-${k}`, local);
      const opts = size === 'default' ? {} : { batch_size: parseInt(size, 10) };
      const t0 = process.hrtime.bigint();
      const res = await PouchDB.replicate(remote, target, opts);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const info = await target.info();
      if (!res.ok || info.doc_count !== n) {
        throw new Error(`replication incomplete: ok=${res.ok}, ${info.doc_count} of ${n} docs`);
      }
      console.log(JSON.stringify({
        docs: n,
        seconds: Number(secs.toFixed(3)),
        docs_per_s: Math.round(n / secs),
        adapter: ready.adapter,
        batch_size: size === 'default' ? 100 : opts.batch_size,
        default_batch_size: size === 'default',
        adapter_note: ready.note,
        doc_bytes: Math.round(ready.docBytes),
        load_seconds: ready.loadSecs,
        pouchdb: meta,
        server: `express-pouchdb ${require('express-pouchdb/package.json').version} in a child process, HTTP on 127.0.0.1`,
      }));
      await target.destroy();
    }
  } finally {
    child.send('stop');
    await new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      const t = setTimeout(() => { child.kill(); resolve(); }, 10000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
    });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'serve') {
  serve().catch((e) => { console.error(e); process.exit(1); });
} else {
  main().catch((e) => { console.error(`pouchdb drain: ${e.stack || e}`); process.exit(1); });
}
