'use strict';
// Process model: config test, worker crash and respawn, robust mutex
// repair, reload under load, graceful stop, master death, settings and
// usage through the master's single writer.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const { Daemon, request, sleep, waitFor, pidAlive, BIN, AUTH } = require('./lib/daemon');

async function withDaemon(opts, fn) {
  const d = await new Daemon(opts).start();
  try {
    await fn(d);
  } finally {
    d.cleanup();
  }
}

function workerRows(shm) {
  return shm.workers.filter((w) => w.state === 2);
}

test('-t accepts a good file and names file:line for bad ones', () => {
  const dir = fs.mkdtempSync('/tmp/s2a-conf-');
  const good = path.join(dir, 'good.conf');
  fs.writeFileSync(good, '# comment\n[server]\nlisten = 127.0.0.1:9 [::1]:9\nworkers = auto\n; x\n[log]\nlevel = debug\n');
  let r = spawnSync(BIN, ['-t', '-c', good], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const cases = [
    ['[server]\nworkers = 0\n', 2, /workers must be auto or 1\.\.64/],
    ['[server]\n\nlisten = nonsense\n', 3, /bad (port in )?listen address/],
    ['[server]\nbogus = 1\n', 2, /unknown key "bogus" in \[server\]/],
    ['[nosuch]\n', 1, /unknown section \[nosuch\]/],
    ['[log]\nlevel = info\nlevel = debug\n', 3, /duplicate key "level"/],
    ['listen = 1\n', 1, /outside a section/],
    ['[server]\nmax_body_size = 12q\n', 2, /not a valid size/],
    ['[upstream]\nbase_url = ftp://x\n', 2, /http:\/\/ or https:\/\//],
  ];
  for (const [text, line, re] of cases) {
    const f = path.join(dir, 'bad.conf');
    fs.writeFileSync(f, text);
    r = spawnSync(BIN, ['-t', '-c', f], { encoding: 'utf8' });
    assert.equal(r.status, 2, text);
    assert.ok(r.stderr.includes(`${f}:${line}: `), `${text} -> ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  r = spawnSync(BIN, ['-t', '-c', path.join(dir, 'missing.conf')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot open/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a worker killed with SIGKILL is replaced within a second and its leases are reclaimed', async () => {
  await withDaemon({ allowedErrors: [/killed by signal 9/] }, async (d) => {
    const l = await request(d.base, 'POST', '/__test/lease?n=3&kind=video');
    assert.equal(l.status, 200);
    assert.equal(l.json.acquired, 3);
    let shm = (await request(d.base, 'GET', '/__test/shm')).json;
    assert.equal(shm.leases, 3);
    assert.deepEqual(shm.inflight, [0, 3]);
    const victim = l.json.pid;
    const before = d.workers();
    assert.ok(before.includes(victim));
    const t0 = Date.now();
    process.kill(victim, 'SIGKILL');
    await waitFor(() => {
      const now = d.workers();
      return now.length === 2 && !now.includes(victim);
    }, { timeout: 3000, interval: 20, what: 'replacement worker' });
    const replacedMs = Date.now() - t0;
    assert.ok(replacedMs < 1000, `replaced after ${replacedMs} ms`);
    shm = await waitFor(async () => {
      const s = (await request(d.base, 'GET', '/__test/shm')).json;
      return workerRows(s).length === 2 ? s : null;
    }, { what: 'two ready workers' });
    assert.equal(shm.leases, 0);
    assert.deepEqual(shm.inflight, [0, 0]);
    for (let i = 0; i < 10; i++) {
      assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    }
    assert.match(d.log(), /worker \d \(pid \d+\) killed by signal 9; 3 leases released/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('a worker dying inside the shm lock leaves the table usable (EOWNERDEAD repaired)', async () => {
  await withDaemon({ allowedErrors: [/killed by signal 9/] }, async (d) => {
    // Two leases held by some worker; the dying worker then corrupts the
    // table while holding the lock.
    const l = await request(d.base, 'POST', '/__test/lease?n=2');
    assert.equal(l.json.acquired, 2);
    const before = d.workers();
    await assert.rejects(request(d.base, 'POST', '/__test/die-locked'));
    // Settled: one original worker is gone and reaped, two ready rows are
    // live processes.
    const shm = await waitFor(async () => {
      const s = (await request(d.base, 'GET', '/__test/shm', { timeout: 2000 })).json;
      const rows = workerRows(s);
      const dead = before.find((p) => !pidAlive(p));   // reaped, not a zombie
      return dead !== undefined && rows.length === 2 && s.repairs >= 1
        && rows.every((w) => w.pid !== dead && pidAlive(w.pid)) ? s : null;
    }, { what: 'repaired table with two workers' });
    const holderAlive = pidAlive(l.json.pid);
    assert.equal(shm.leases, holderAlive ? 2 : 0);
    assert.deepEqual(shm.inflight, [0, holderAlive ? 2 : 0]);
    assert.match(d.log(), /died holding the lock; table repaired/);
    // The lock works for new leases after the repair.
    const l2 = await request(d.base, 'POST', '/__test/lease?n=1');
    assert.equal(l2.json.acquired, 1);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('SIGHUP changes the worker count while a load loop sees no failed request', async () => {
  await withDaemon({}, async (d) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let ok = 0;
    const failures = [];
    let running = true;
    const loop = async () => {
      while (running) {
        try {
          const r = await request(d.base, 'GET', '/v1/models', { headers: AUTH, agent });
          if (r.status === 200) ok++; else failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push(e.code || e.message);
        }
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    const reloadTo = async (n, gen) => {
      d.writeConf({ server: { workers: String(n) } });
      process.kill(d.pid, 'SIGHUP');
      await waitFor(async () => {
        const s = (await request(d.base, 'GET', '/__test/shm')).json;
        return s.workers.length === n && s.workers.every((w) => w.generation === gen && w.state === 2);
      }, { timeout: 10000, what: `${n} workers of generation ${gen}` });
      await sleep(300);
    };
    await sleep(300);
    await reloadTo(3, 2);
    await reloadTo(1, 3);
    await reloadTo(2, 4);
    running = false;
    await Promise.all(loops);
    agent.destroy();
    assert.deepEqual(failures, []);
    assert.ok(ok > 200, `only ${ok} requests completed`);
    assert.equal(d.workers().length, 2);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('an invalid file on SIGHUP keeps the running configuration', async () => {
  await withDaemon({}, async (d) => {
    fs.writeFileSync(d.confFile, '[server]\nworkers = many\n');
    process.kill(d.pid, 'SIGHUP');
    await waitFor(() => /reload failed, keeping the running configuration: .*:2: workers must be/.test(d.log()),
      { what: 'reload failure logged' });
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    d.allowedErrors.push(/reload failed/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('a reload whose new address is taken changes nothing, and the next one applies in full', async () => {
  await withDaemon({}, async (d) => {
    // Hold a port, then ask for it along with a worker count change.
    const { freePort } = require('./lib/daemon');
    const port2 = await freePort();
    const holder = http.createServer().listen(port2, '127.0.0.1');
    await new Promise((r) => holder.on('listening', r));
    const before = d.workers();
    assert.equal(before.length, 2);
    d.writeConf({ server: { listen: `127.0.0.1:${d.port} 127.0.0.1:${port2}`, workers: '3' } });
    process.kill(d.pid, 'SIGHUP');
    await waitFor(() => /reload failed, keeping the running configuration: a listening socket could not be opened/.test(d.log()),
      { what: 'reload refused' });
    await sleep(300);
    // The old generation, in full: same workers, same count, old address.
    assert.deepEqual(d.workers(), before);
    assert.doesNotMatch(d.log(), /reloading: generation 2/);
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    await new Promise((r) => holder.close(r));
    process.kill(d.pid, 'SIGHUP');
    await waitFor(() => d.workers().length === 3 && /reloading: generation 2, 3 workers/.test(d.log()),
      { what: 'second reload applied' });
    const r2 = await waitFor(async () => {
      const r = await request(`http://127.0.0.1:${port2}`, 'GET', '/v1/models', { headers: AUTH }).catch(() => null);
      return r && r.status === 200 ? r : null;
    }, { what: 'new address serves' });
    assert.equal(r2.status, 200);
    d.allowedErrors.push(/reload failed/, /failed \(errno/, /bind\(\)/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('a second SIGTERM during a graceful stop makes it a fast stop', async () => {
  await withDaemon({ conf: { server: { shutdown_timeout: '30' } } }, async (d) => {
    const slow = request(d.base, 'GET', '/__test/sleep?ms=20000').catch((e) => e);
    await sleep(300);
    const t0 = Date.now();
    process.kill(d.pid, 'SIGTERM');
    await waitFor(() => /graceful stop requested/.test(d.log()), { what: 'graceful stop' });
    process.kill(d.pid, 'SIGTERM');
    const res = await d.exited;
    const took = Date.now() - t0;
    assert.ok(took < 8000, `stopped after ${took} ms`);
    assert.match(d.log(), /fast stop requested/);
    assert.equal(res.code, 0);
    await slow;
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('SIGTERM lets an in-flight request finish, refuses new connections and removes the pidfile', async () => {
  await withDaemon({}, async (d) => {
    assert.ok(fs.existsSync(d.pidFile));
    assert.equal(Number(fs.readFileSync(d.pidFile, 'utf8')), d.pid);
    const slow = request(d.base, 'GET', '/__test/sleep?ms=1500');
    await sleep(300);
    process.kill(d.pid, 'SIGTERM');
    await sleep(200);
    await assert.rejects(request(d.base, 'GET', '/healthz'), /ECONNREFUSED|ECONNRESET/);
    const r = await slow;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { slept: true });
    const res = await d.exited;
    assert.equal(res.code, 0);
    assert.equal(fs.existsSync(d.pidFile), false);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('workers exit when the master is killed', async () => {
  await withDaemon({}, async (d) => {
    const workers = d.workers();
    assert.equal(workers.length, 2);
    process.kill(d.pid, 'SIGKILL');
    await waitFor(() => workers.every((p) => !pidAlive(p)), { timeout: 8000, what: 'workers gone' });
  });
});

test('a runtime setting changed through the master reaches every worker within a second', async () => {
  await withDaemon({ conf: { server: { workers: '3' } } }, async (d) => {
    const bad = await request(d.base, 'POST', '/__test/setting', { body: JSON.stringify({ key: 'log_level', value: 'loud' }) });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /log_level must be/);
    const t0 = Date.now();
    const r = await request(d.base, 'POST', '/__test/setting', { body: JSON.stringify({ key: 'log_level', value: 'debug' }) });
    assert.equal(r.status, 200);
    const shm = await waitFor(async () => {
      const s = (await request(d.base, 'GET', '/__test/shm')).json;
      return s.workers.length === 3 && s.workers.every((w) => w.settings_seen === s.settings_seq) ? s : null;
    }, { timeout: 1000, interval: 20, what: 'every worker applied the setting' });
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(shm.workers.length, 3);
    // Each worker reports the new level (connections spread across them).
    const seen = new Map();
    for (let i = 0; i < 60 && seen.size < 3; i++) {
      const w = (await request(d.base, 'GET', '/__test/worker')).json;
      seen.set(w.pid, w.log_level);
    }
    assert.equal(seen.size, 3);
    assert.deepEqual([...seen.values()], ['debug', 'debug', 'debug']);
    assert.equal(d.sqlite("SELECT value FROM settings WHERE key='log_level'"), 'debug');
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  });
});

test('usage counters reach SQLite in batches through the master', async () => {
  await withDaemon({}, async (d) => {
    for (let i = 0; i < 30; i++) {
      assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    }
    await request(d.base, 'GET', '/v1/models');
    await waitFor(() => d.sqlite("SELECT COALESCE(SUM(count),0) FROM usage_daily WHERE route='models' AND status=200") === '30',
      { timeout: 8000, what: '30 counted requests' });
    assert.equal(d.sqlite("SELECT SUM(count) FROM usage_daily WHERE route='models' AND status=401"), '1');
    const day = new Date().toISOString().slice(0, 10);
    assert.equal(d.sqlite('SELECT DISTINCT day FROM usage_daily'), day);
    // Counters still in a worker when it stops are flushed, not lost.
    for (let i = 0; i < 5; i++) await request(d.base, 'GET', '/healthz');
    assert.equal((await d.stop()).code, 0);
    assert.equal(d.sqlite("SELECT SUM(count) FROM usage_daily WHERE route='health'"), '5');
  });
});
