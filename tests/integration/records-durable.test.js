'use strict';
// Records are never lost: a locked database keeps them in the master's
// queue (and /readyz says so), a dead worker's tasks Sora never took are
// closed at once, and such rows a crash left are closed at the next start.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Daemon, request, waitFor, sleep, pidAlive } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const json = (o) => JSON.stringify(o);

// Holds the database's write lock from another process until released.
async function lockDatabase(d) {
  const p = spawn('sqlite3', [path.join(d.dir, 'data', 'sora2api.db')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (b) => { out += b; });
  p.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n");
  await waitFor(() => out.includes('locked'), { what: 'the lock taken by sqlite3' });
  return async () => {
    p.stdin.end('ROLLBACK;\n.quit\n');
    await new Promise((r) => p.on('exit', r));
  };
}

test('a locked database loses no record; /readyz is 503 and admin writes get 503 meanwhile', async () => {
  const d = await new Daemon({ allowedErrors: [/database writes are failing/] }).start();
  try {
    const login = await request(d.base, 'POST', '/api/login', { body: json({ username: 'admin', password: 'admin' }) });
    const H = { Authorization: `Bearer ${login.json.token}` };
    assert.equal((await request(d.base, 'GET', '/readyz')).status, 200);
    const unlock = await lockDatabase(d);
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      const r = await request(d.base, 'POST', '/__test/record', { body: json({
        job_id: `job_locked_${i}`, task: { model: 'sora-image', status: 'succeeded', progress: 100 },
        log: { operation: 'generate_image', model: 'sora-image', status_code: 200, duration_ms: 5 } }) });
      assert.equal(r.status, 202);
    }
    // Not blocked: the records were taken at once.
    assert.ok(Date.now() - t0 < 2000, `records took ${Date.now() - t0} ms`);
    const ready = await waitFor(async () => {
      const r = await request(d.base, 'GET', '/readyz');
      return r.status === 503 ? r : null;
    }, { what: '/readyz 503 while writes fail' });
    assert.equal(ready.json.database, 'unavailable');
    const w = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ error_ban_threshold: 5 }) });
    assert.equal(w.status, 503, w.text);
    assert.match(w.json.detail, /database is busy or unavailable/);
    // Health itself does not need the database.
    assert.equal((await request(d.base, 'GET', '/healthz')).status, 200);
    await sleep(2500);
    assert.equal(d.sqlite("SELECT count(*) FROM tasks WHERE job_id LIKE 'job_locked_%'"), '0');
    assert.match(d.log(), /database writes are failing/);
    await unlock();
    await waitFor(() => d.sqlite("SELECT count(*) FROM tasks WHERE job_id LIKE 'job_locked_%' AND status = 'succeeded'") === '20'
      && d.sqlite("SELECT count(*) FROM request_logs WHERE operation = 'generate_image'") === '20',
    { what: 'every queued record written after the unlock' });
    await waitFor(async () => (await request(d.base, 'GET', '/readyz')).status === 200, { what: '/readyz 200 again' });
    assert.match(d.log(), /database writable again/);
    // The setting the locked write refused was not applied.
    assert.equal(d.sqlite("SELECT value FROM settings WHERE key='error_ban_threshold'"), '3');
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('a worker killed mid-job: a task Sora never took is closed at once as worker_died', async () => {
  const ctx = await g.startGenPool({ workers: 2, allowedErrors: [/killed by signal 9/] });
  try {
    const { fake, d } = ctx;
    await g.addToken(ctx, {}, { remaining: null });
    // The submission never answers: the row is `submitting` (it may have
    // reached Sora) without an upstream task id, so it is neither resumed
    // nor sent again (gen-resume.test.js and jobs-durable.test.js have
    // the others).
    await g.fakeCall(fake, 'POST', '/__fake/arm', { route: 'POST /backend/nf/create', hang: true, times: -1 });
    const prompt = `never submitted, durable [${Date.now()}]`;
    const running = g.chat(d, { model: 'sora-video-10s', messages: g.user(prompt), stream: true }).catch((e) => e);
    const row = await waitFor(() => {
      const out = d.sqlite(`SELECT status || '|' || COALESCE(worker_pid, '') FROM tasks WHERE prompt = '${prompt}'`);
      return /^submitting\|\d+$/.test(out) ? out : null;
    }, { what: 'the task submitting, with its worker' });
    await waitFor(async () => (await fake.journal('?route=POST%20/backend/nf/create')).entries.length === 1,
      { what: 'the submission under way' });
    const pid = Number(row.split('|')[1]);
    assert.ok(d.workers().includes(pid), `${pid} is one of the workers`);
    process.kill(pid, 'SIGKILL');
    const closed = await waitFor(() => {
      const out = d.sqlite(`SELECT status || '|' || error_code || '|' || (completed_at IS NOT NULL) FROM tasks WHERE prompt = '${prompt}'`);
      return out.startsWith('failed|') ? out : null;
    }, { timeout: 3000, what: 'the dead worker\'s task closed' });
    assert.equal(closed, 'failed|worker_died|1');
    await running;
    assert.match(d.log(), /1 tasks of worker pid \d+ closed as failed \(worker_died\)/);
    await waitFor(() => d.workers().length === 2 && !pidAlive(pid), { what: 'the worker replaced' });
    await g.disarm(fake);
  } finally {
    await stopPool(ctx);
  }
});

test('rows a crash left running are closed at the next start (interrupted)', async () => {
  const d = await new Daemon({ allowedErrors: [/control channel to the master closed/] }).start();
  try {
    await request(d.base, 'POST', '/__test/record', { body: json({ job_id: 'job_crashed', task: { model: 'sora-image', status: 'running', progress: 40 } }) });
    await request(d.base, 'POST', '/__test/record', { body: json({ job_id: 'job_done', task: { model: 'sora-image', status: 'succeeded', progress: 100 } }) });
    await waitFor(() => d.sqlite("SELECT count(*) FROM tasks WHERE job_id IN ('job_crashed', 'job_done')") === '2', { what: 'both rows' });
    const workers = d.workers();
    d.proc.kill('SIGKILL');
    await d.exited;
    await waitFor(() => workers.every((p) => !pidAlive(p)), { what: 'the workers gone with the master' });
    await d.start();
    assert.equal(d.sqlite("SELECT status || '|' || error_code FROM tasks WHERE job_id = 'job_crashed'"), 'failed|interrupted');
    assert.equal(d.sqlite("SELECT status || '|' || COALESCE(error_code, '') FROM tasks WHERE job_id = 'job_done'"), 'succeeded|');
    assert.match(d.log(), /1 tasks left unfinished by the last run closed as failed \(interrupted\)/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});
