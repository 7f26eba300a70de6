'use strict';
// Generation records through the master: task rows updated as a job
// moves, request-log rows, and the admin listings.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Daemon, request, waitFor } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);

test('task rows are upserted by job id; logs and tasks are listed newest first', async () => {
  const d = await new Daemon().start();
  try {
    const r = await request(d.base, 'POST', '/api/login', { body: json({ username: 'admin', password: 'admin' }) });
    const H = { Authorization: `Bearer ${r.json.token}` };
    assert.deepEqual((await request(d.base, 'GET', '/api/logs', { headers: H })).json, []);
    assert.deepEqual((await request(d.base, 'GET', '/api/tasks', { headers: H })).json, { success: true, tasks: [] });
    const rec = (body) => request(d.base, 'POST', '/__test/record', { body: json(body) });
    await rec({ job_id: 'job_a', task: { model: 'sora-image', mode: 'text_to_image', prompt: 'a cat', status: 'queued' } });
    await rec({ job_id: 'job_a', task: { status: 'polling', upstream_task_id: 'task_01', token_id: 7, progress: 0.5 } });
    await rec({ job_id: 'job_a', task: { status: 'completed', progress: 1, result_urls: ['http://h/tmp/x.png?a=1&b=2'], duration_ms: 1234, completed_at: 1795000000 },
      log: { request_id: 'r1', token_id: 7, operation: 'generate_image', model: 'sora-image', status_code: 200, duration_ms: 1234 } });
    // Records travel from whichever worker took the request: wait for the
    // first to land so "newest first" has an order to check.
    await waitFor(async () => (await request(d.base, 'GET', '/api/logs', { headers: H })).json.length === 1,
      { what: 'the first log row' });
    await rec({ job_id: 'job_b', task: { model: 'sora-video-10s', status: 'failed', error_message: 'Content policy violation: nope' },
      log: { operation: 'generate_video', model: 'sora-video-10s', status_code: 400, error: 'Content policy violation: nope' } });
    const tasks = await waitFor(async () => {
      const t = (await request(d.base, 'GET', '/api/tasks', { headers: H })).json.tasks;
      return t.length === 2 && t[1].status === 'completed' ? t : null;
    }, { what: 'two task rows' });
    assert.equal(tasks[0].job_id, 'job_b');
    const a = tasks[1];
    assert.equal(a.job_id, 'job_a');
    assert.equal(a.model, 'sora-image');
    assert.equal(a.prompt, 'a cat');
    assert.equal(a.upstream_task_id, 'task_01');
    assert.equal(a.token_id, 7);
    assert.equal(a.progress, 1);
    assert.deepEqual(a.result_urls, ['http://h/tmp/x.png?a=1&b=2']);
    assert.equal(a.completed_at, new Date(1795000000 * 1000).toISOString().replace('.000Z', 'Z'));
    assert.match(a.created_at, /^\d{4}-\d\d-\d\dT/);
    const failed = (await request(d.base, 'GET', '/api/tasks?status=failed', { headers: H })).json.tasks;
    assert.deepEqual(failed.map((t) => t.job_id), ['job_b']);
    const logs = (await request(d.base, 'GET', '/api/logs?limit=10', { headers: H })).json;
    assert.equal(logs.length, 2);
    assert.equal(logs[0].operation, 'generate_video');
    assert.equal(logs[0].status_code, 400);
    assert.equal(logs[1].request_id, 'r1');
    assert.equal(logs[1].token_email, null);
    assert.equal((await request(d.base, 'GET', '/api/logs?limit=1', { headers: H })).json.length, 1);
    assert.equal((await request(d.base, 'GET', '/api/logs')).status, 401);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});
