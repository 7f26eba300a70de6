'use strict';
// Operations: -d, log reopening, a reload that changes the listen set,
// and the switch to an unprivileged user.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const { Daemon, request, sleep, waitFor, pidAlive, freePort, childPids, BIN, AUTH } = require('./lib/daemon');

test('-d detaches once the daemon serves; TERM stops it and removes the pidfile', async () => {
  const d = new Daemon();
  d.port = await freePort();
  fs.mkdirSync(path.join(d.dir, 'ui'), { recursive: true });
  d.writeConf();
  const r = spawnSync(BIN, ['-d', '-c', d.confFile], { encoding: 'utf8', timeout: 15000 });
  try {
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(fs.readFileSync(d.pidFile, 'utf8'));
    assert.ok(pid > 0 && pidAlive(pid));
    assert.notEqual(pid, r.pid);
    const base = `http://127.0.0.1:${d.port}`;
    assert.equal((await request(base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    assert.equal(childPids(pid).length, 2);
    // A second instance on the same pidfile refuses to start.
    const again = spawnSync(BIN, ['-d', '-c', d.confFile], { encoding: 'utf8', timeout: 15000 });
    assert.equal(again.status, 1);
    assert.match(d.log(), /already running: pid \d+/);
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !pidAlive(pid), { timeout: 10000, what: 'daemon exit' });
    assert.equal(fs.existsSync(d.pidFile), false);
  } finally {
    d.cleanup();
  }
});

test('a second daemon cannot share a listening address', async () => {
  const a = await new Daemon().start();
  const b = new Daemon({ port: a.port });
  try {
    fs.mkdirSync(path.join(b.dir, 'ui'), { recursive: true });
    b.port = a.port;
    b.writeConf();
    const r = spawnSync(BIN, ['-f', '-c', b.confFile], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 1);
    assert.match(b.log(), /bind\(\) for 127\.0\.0\.1:\d+ failed \(98: Address already in use\)/);
    assert.equal((await a.stop()).code, 0);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('SIGUSR1 reopens the error and access logs', async () => {
  const d = await new Daemon().start();
  try {
    await request(d.base, 'GET', '/healthz');
    await waitFor(() => fs.existsSync(d.accessLog) && fs.readFileSync(d.accessLog, 'utf8').includes('/healthz'),
      { what: 'first access line' });
    fs.renameSync(d.accessLog, `${d.accessLog}.1`);
    fs.renameSync(d.logFile, `${d.logFile}.1`);
    process.kill(d.pid, 'SIGUSR1');
    await waitFor(() => fs.existsSync(d.logFile) && /log files reopened/.test(d.log()), { what: 'new error log' });
    await sleep(200);
    await request(d.base, 'GET', '/readyz');
    await waitFor(() => fs.existsSync(d.accessLog) && fs.readFileSync(d.accessLog, 'utf8').includes('/readyz'),
      { what: 'new access log' });
    assert.doesNotMatch(fs.readFileSync(`${d.accessLog}.1`, 'utf8'), /readyz/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('SIGHUP moves the daemon to a new listen set without failing requests on kept addresses', async () => {
  const d = await new Daemon().start();
  try {
    const port2 = await freePort();
    const base2 = `http://127.0.0.1:${port2}`;
    await assert.rejects(request(base2, 'GET', '/healthz'), /ECONNREFUSED/);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    let running = true;
    let ok = 0;
    const failures = [];
    const loop = async (base) => {
      while (running) {
        try {
          const r = await request(base, 'GET', '/v1/models', { headers: AUTH, agent });
          if (r.status === 200) ok++; else failures.push(r.status);
        } catch (e) {
          failures.push(e.code || e.message);
        }
      }
    };
    const loops = [loop(d.base), loop(d.base), loop(d.base)];
    // Add a second address: both serve.
    d.writeConf({ server: { listen: `127.0.0.1:${d.port} 127.0.0.1:${port2}` } });
    process.kill(d.pid, 'SIGHUP');
    await waitFor(async () => (await request(base2, 'GET', '/healthz')).status === 200, { what: 'second address' });
    await sleep(500);
    running = false;
    await Promise.all(loops);
    assert.deepEqual(failures, []);
    assert.ok(ok > 50);
    // Now keep only the new address, with load on it.
    running = true;
    const loops2 = [loop(base2), loop(base2), loop(base2)];
    d.writeConf({ server: { listen: `127.0.0.1:${port2}` } });
    process.kill(d.pid, 'SIGHUP');
    await waitFor(async () => {
      try { await request(d.base, 'GET', '/healthz'); return false; } catch (e) { return e.code === 'ECONNREFUSED'; }
    }, { what: 'old address closed' });
    await sleep(300);
    running = false;
    await Promise.all(loops2);
    agent.destroy();
    assert.deepEqual(failures, []);
    assert.equal(d.workers().length, 2);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('started as root with [server] user, master and workers run as that user', { skip: process.getuid() !== 0 }, async () => {
  const d = new Daemon({ conf: { server: { user: 'nobody' } } });
  fs.chmodSync(d.dir, 0o755);
  try {
    await d.start();
    const uidOf = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)[1]);
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
    assert.equal(uidOf(d.pid), nobody);
    for (const w of d.workers()) assert.equal(uidOf(w), nobody);
    assert.equal(fs.statSync(path.join(d.dir, 'data', 'sora2api.db')).uid, nobody);
    const r = await request(d.base, 'POST', '/__test/setting', { body: JSON.stringify({ key: 'log_level', value: 'notice' }) });
    assert.equal(r.status, 200);
    assert.equal((await d.stop()).code, 0);
    // The pidfile's directory is root's: the file is emptied instead.
    assert.ok(!fs.existsSync(d.pidFile) || fs.readFileSync(d.pidFile, 'utf8') === '');
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('SIGQUIT stops at once, even with a request in flight', async () => {
  const d = await new Daemon().start();
  try {
    const workers = d.workers();
    const slow = request(d.base, 'GET', '/__test/sleep?ms=5000').then(() => 'answered', (e) => e.code || 'failed');
    await sleep(200);
    const t0 = Date.now();
    process.kill(d.pid, 'SIGQUIT');
    const res = await d.exited;
    assert.ok(Date.now() - t0 < 3000, 'fast stop took too long');
    assert.equal(res.code, 0);
    assert.notEqual(await slow, 'answered');
    assert.ok(workers.every((p) => !pidAlive(p)));
    assert.equal(fs.existsSync(d.pidFile), false);
  } finally {
    d.cleanup();
  }
});
