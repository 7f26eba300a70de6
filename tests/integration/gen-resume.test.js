'use strict';
// Resume: a job Sora has the task of is never lost and never submitted
// twice. After a worker's kill -9, the master's kill -9 and a graceful
// stop, a live worker takes the row over, follows the task and records
// the result; a row whose token went meanwhile fails with token_gone.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { request, waitFor, pidAlive } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);
const q = (s) => s.replace(/'/g, "''");

// The row of the job with `prompt`: status|worker_pid|upstream task id.
function row(d, prompt) {
  return d.sqlite(`SELECT status || '|' || COALESCE(worker_pid, '') || '|' || COALESCE(upstream_task_id, '')
    FROM tasks WHERE prompt = '${q(prompt)}'`);
}

// Waits until the job runs at Sora, with its worker; resolves {pid, task}.
async function running(d, prompt) {
  const out = await waitFor(() => {
    const r = row(d, prompt);
    return /^running\|\d+\|.+$/.test(r) ? r : null;
  }, { what: `the task of "${prompt}" running` });
  const [, pid, task] = out.split('|');
  return { pid: Number(pid), task };
}

// Waits until the row ends; resolves status|error_code|result_urls.
function ended(d, prompt, timeout = 20000) {
  return waitFor(() => {
    const r = d.sqlite(`SELECT status || '|' || COALESCE(error_code, '') || '|' || COALESCE(result_urls, '')
      FROM tasks WHERE prompt = '${q(prompt)}'`);
    return /^(succeeded|failed|cancelled)\|/.test(r) ? r : null;
  }, { timeout, what: `the row of "${prompt}" ended` });
}

// Submissions of `prompt` the fake saw (video and image create calls).
async function creates(fake, prompt) {
  const j = await fake.journal('');
  return j.entries.filter((e) => e.method === 'POST'
    && (e.path === '/backend/nf/create' || e.path === '/backend/video_gen')
    && e.body && e.body.prompt === prompt).length;
}

function assertSucceeded(out, what) {
  const [status, code, urls] = out.split('|');
  assert.equal(status, 'succeeded', `${what}: ${out}`);
  assert.equal(code, '');
  const list = JSON.parse(urls);
  assert.ok(Array.isArray(list) && list.length >= 1 && list.every((u) => /^https?:\/\//.test(u)), urls);
  return list;
}

test('a worker killed with kill -9: its video and image jobs are resumed and succeed, one submission each', async () => {
  const ctx = await g.startGenPool({ workers: 2, poll: 200, allowedErrors: [/killed by signal 9/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3, image_concurrency: 3 }, { remaining: null });
    // The cache on: the resumed job caches with the client's Host.
    assert.equal((await request(d.base, 'POST', '/api/cache/enabled', { headers: ctx.H, body: json({ enabled: true }) })).status, 200);
    const video = `resume a video #slow [${Date.now()}]`;
    const image = `resume an image #slow [${Date.now()}]`;
    const vs = g.chat(d, { model: 'sora-video-10s', messages: g.user(video), stream: true }).catch((e) => e);
    const is = g.chat(d, { model: 'sora-image', messages: g.user(image), stream: true }).catch((e) => e);
    const v = await running(d, video);
    const i = await running(d, image);
    assert.ok(d.workers().includes(v.pid));
    process.kill(v.pid, 'SIGKILL');
    if (i.pid !== v.pid) process.kill(i.pid, 'SIGKILL');
    await vs;
    await is;
    const vu = assertSucceeded(await ended(d, video), 'video');
    const iu = assertSucceeded(await ended(d, image), 'image');
    assert.match(vu[0], new RegExp(`^http://127\\.0\\.0\\.1:${d.port}/tmp/`), 'cached under the client\'s Host');
    assert.match(iu[0], new RegExp(`^http://127\\.0\\.0\\.1:${d.port}/tmp/`));
    assert.equal((await request(d.base, 'GET', new URL(vu[0]).pathname)).status, 200);
    // Another worker finished them; neither was submitted again.
    const owner = Number(d.sqlite(`SELECT worker_pid FROM tasks WHERE prompt = '${q(video)}'`));
    assert.notEqual(owner, v.pid);
    assert.equal(await creates(fake, video), 1);
    assert.equal(await creates(fake, image), 1);
    assert.equal(d.sqlite(`SELECT upstream_task_id FROM tasks WHERE prompt = '${q(video)}'`), v.task);
    assert.match(d.log(), /job job_[0-9a-f]+ \(upstream task .+\) resumed by worker/);
    await waitFor(() => d.workers().length === 2 && !pidAlive(v.pid), { what: 'the worker replaced' });
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('the master killed with kill -9: a restart on the same data dir finishes the video', async () => {
  const ctx = await g.startGenPool({ workers: 2, poll: 200, allowedErrors: [/control channel to the master closed/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const video = `resume after the master #slow [${Date.now()}]`;
    const vs = g.chat(d, { model: 'sora-video-10s', messages: g.user(video), stream: true }).catch((e) => e);
    await running(d, video);
    const workers = d.workers();
    d.proc.kill('SIGKILL');
    await d.exited;
    await vs;
    await waitFor(() => workers.every((p) => !pidAlive(p)), { what: 'the workers gone with the master' });
    assert.match(row(d, video), /^running\|/);
    await d.start();
    assertSucceeded(await ended(d, video), 'video');
    assert.equal(await creates(fake, video), 1);
    assert.match(d.log(), /1 tasks left unfinished by the last run will be resumed/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a graceful stop leaves a submitted job running; the next start finishes it', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200, server: { shutdown_timeout: '1' } });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const video = `resume after a stop #slow [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', messages: g.user(video), stream: true });
    await running(d, video);
    assert.equal((await d.stop()).code, 0);
    const s = g.parseStream(await streamed);
    assert.equal(s.error.code, 'server_shutdown');
    assert.match(row(d, video), /^running\|\d+\|.+$/);
    await d.start();
    assertSucceeded(await ended(d, video), 'video');
    assert.equal(await creates(fake, video), 1);
    assert.equal(d.sqlite(`SELECT count(*) FROM request_logs WHERE operation = 'generate_video' AND status_code = 200`), '1');
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a fast stop (SIGQUIT) also leaves a submitted job running; the next start finishes it', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200 });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const video = `resume after a fast stop #slow [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', messages: g.user(video), stream: true }).catch((e) => e);
    await running(d, video);
    assert.equal((await d.stop('SIGQUIT')).code, 0);
    await streamed;
    assert.match(row(d, video), /^running\|\d+\|.+$/);
    await d.start();
    assertSucceeded(await ended(d, video), 'video');
    assert.equal(await creates(fake, video), 1);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a resumed row whose token was deleted meanwhile fails with token_gone', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200, server: { shutdown_timeout: '1' } });
  const { fake, d } = ctx;
  try {
    const t = await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const video = `resume without a token #slow [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', messages: g.user(video), stream: true });
    await running(d, video);
    assert.equal((await d.stop()).code, 0);
    await streamed;
    // Deleted while the daemon was down.
    d.sqlite(`DELETE FROM tokens WHERE id = ${t.id}`);
    await d.start();
    const out = await ended(d, video);
    assert.equal(out.split('|').slice(0, 2).join('|'), 'failed|token_gone');
    assert.match(d.sqlite(`SELECT error_message FROM tasks WHERE prompt = '${q(video)}'`), /token .* removed/);
    assert.equal(await creates(fake, video), 1);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});
