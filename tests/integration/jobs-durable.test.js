'use strict';
// Jobs are durable before the upstream is asked, and submitted again when
// nothing was sent. The first row (`queued`) is committed before a job
// waits for a token (an async create answers only then); a `submitting`
// row is committed before each call to Sora. After a master's or a
// worker's kill -9, or a graceful stop, a row still `queued` is submitted
// once by a live worker; a `submitting` one is closed, never sent twice;
// a queued job whose input image died with it is closed. The fake's
// journal counts the create calls. Also: per-owner video reads, and a
// database that refuses the first row.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { request, waitFor, pidAlive, AUTH } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);
const q = (s) => s.replace(/'/g, "''");

// The row of `prompt`: status|worker_pid|upstream task id.
function row(d, prompt) {
  return d.sqlite(`SELECT status || '|' || COALESCE(worker_pid, '') || '|' || COALESCE(upstream_task_id, '')
    FROM tasks WHERE prompt = '${q(prompt)}'`);
}

// Waits until the row of `prompt` matches `re`; resolves the row.
function rowIs(d, prompt, re, what, timeout = 10000) {
  return waitFor(() => {
    const r = row(d, prompt);
    return re.test(r) ? r : null;
  }, { timeout, what: `${what} ("${prompt}": ${row(d, prompt)})` });
}

// Waits until the row ends; resolves status|error_code.
function ended(d, prompt, timeout = 20000) {
  return waitFor(() => {
    const r = d.sqlite(`SELECT status || '|' || COALESCE(error_code, '') FROM tasks WHERE prompt = '${q(prompt)}'`);
    return /^(succeeded|failed|cancelled)\|/.test(r) ? r : null;
  }, { timeout, what: `the row of "${prompt}" ended` });
}

// Create calls of `prompt` the fake saw.
async function creates(fake, prompt) {
  const j = await fake.journal('');
  return j.entries.filter((e) => e.method === 'POST'
    && (e.path === '/backend/nf/create' || e.path === '/backend/video_gen')
    && e.body && e.body.prompt === prompt).length;
}

// Holds the pool's only video slot (through the scheduler, like a job)
// until release() (the hook lets go when its client leaves), `ms` pass
// or the daemon goes. Resolves once the lease is taken, to {release,
// released}: the latter a promise of the hold's end.
async function holdToken(d, ms = 60000) {
  let req;
  const released = new Promise((resolve) => {
    req = http.get(`${d.base}/__test/acquire?kind=video&hold_ms=${ms}`, (res) => {
      res.resume();
      res.on('end', resolve);
      res.on('error', resolve);
    });
    req.on('error', resolve);
    req.on('close', resolve);
  });
  await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases >= 1,
    { what: 'the token held' });
  return { release: () => req.destroy(), released };
}

// An async POST /v1/videos; resolves the Video object.
async function createAsync(d, prompt) {
  const r = await request(d.base, 'POST', '/v1/videos', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ prompt, model: 'sora-2', seconds: '4', size: '1280x720' }),
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'queued');
  assert.match(r.json.id, /^job_[0-9a-f]{24}$/);
  return r.json;
}

function getVideo(d, id) {
  return request(d.base, 'GET', `/v1/videos/${id}`, { headers: AUTH });
}

// Waits until the video completes through the API; resolves the object.
function completed(d, id, timeout = 20000) {
  return waitFor(async () => {
    const r = await getVideo(d, id);
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.json.status, 'failed', r.text);
    return r.json.status === 'completed' ? r.json : null;
  }, { timeout, what: `video ${id} completed` });
}

function killMaster(d) {
  const workers = d.workers();
  d.proc.kill('SIGKILL');
  return d.exited.then(() => waitFor(() => workers.every((p) => !pidAlive(p)),
    { what: 'the workers gone with the master' }));
}

test('the master killed while jobs wait for a token: after the restart each is submitted once and completes; an async id exists the moment it is answered', async () => {
  const ctx = await g.startGenPool({ workers: 2, poll: 200, allowedErrors: [/control channel to the master closed/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null });
    const hold = await holdToken(d);
    const chatPrompt = `waits for a token, master killed [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', messages: g.user(chatPrompt), stream: true }).catch((e) => e);
    await rowIs(d, chatPrompt, /^queued\|\d+\|$/, 'the chat job queued, with its worker');
    const videoPrompt = `async, master killed right after the answer [${Date.now()}]`;
    const v = await createAsync(d, videoPrompt);
    // Killed right after the answer: the id it gave is already durable.
    await killMaster(d);
    await streamed;
    await hold.released;
    assert.equal(d.sqlite(`SELECT status || '|' || owner || '|' || prompt FROM tasks WHERE job_id = '${v.id}'`),
      `queued|1|${videoPrompt}`);
    assert.match(row(d, chatPrompt), /^queued\|\d+\|$/);
    assert.equal(await creates(fake, chatPrompt), 0, 'nothing was sent before the kill');
    assert.equal(await creates(fake, videoPrompt), 0);

    await d.start();
    const H = await require('./lib/daemon').adminLogin(d);
    const listed = (await request(d.base, 'GET', '/api/tasks', { headers: H })).json.tasks.find((t) => t.job_id === v.id);
    assert.ok(listed, 'the async job is listed in /api/tasks');
    assert.equal(listed.owner, 1);
    const done = await completed(d, v.id);
    assert.equal(done.model, 'sora-2');
    assert.equal(done.size, '1280x720');
    assert.match(done.data[0].url, /^https?:\/\//);
    assert.equal((await ended(d, chatPrompt)).split('|')[0], 'succeeded');
    assert.equal(await creates(fake, chatPrompt), 1);
    assert.equal(await creates(fake, videoPrompt), 1);
    assert.match(d.log(), /2 tasks left unfinished by the last run will be resumed/);
    assert.match(d.log(), new RegExp(`job ${v.id} \\(not sent to Sora yet\\) handed to worker \\d+ \\(pid \\d+\\) to submit`));
    // The resubmitted jobs end as jobs do: one request-log row each.
    assert.equal(d.sqlite(`SELECT count(*) FROM request_logs WHERE request_id = '${v.id}' AND status_code = 200`), '1');
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a worker killed while its async job is queued: another worker submits it once and it completes', async () => {
  const ctx = await g.startGenPool({ workers: 2, poll: 200, allowedErrors: [/killed by signal 9/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null });
    const hold = await holdToken(d);
    const prompt = `queued, its worker killed [${Date.now()}]`;
    const v = await createAsync(d, prompt);
    const [, pid] = (await rowIs(d, prompt, /^queued\|\d+\|$/, 'the job queued')).split('|');
    assert.ok(d.workers().includes(Number(pid)));
    process.kill(Number(pid), 'SIGKILL');
    await waitFor(() => /handed to worker/.test(d.log()), { what: 'the row handed over' });
    // Wherever the hold lived (it died with the worker, or lets go now),
    // the token is free for the job's new worker.
    hold.release();
    await hold.released;
    const done = await completed(d, v.id);
    assert.equal(done.id, v.id);
    assert.equal(await creates(fake, prompt), 1);
    const owner = Number(d.sqlite(`SELECT worker_pid FROM tasks WHERE job_id = '${v.id}'`));
    assert.notEqual(owner, Number(pid), 'another worker ran it');
    assert.match(d.log(), new RegExp(`job ${v.id} \\(not sent to Sora yet\\) handed to worker`));
    assert.doesNotMatch(d.log(), /closed as failed \(worker_died\)/);
    await waitFor(() => d.workers().length === 2 && !pidAlive(Number(pid)), { what: 'the worker replaced' });
  } finally {
    await stopPool(ctx);
  }
});

test('a graceful stop leaves queued jobs queued (async, and a stream cut with server_shutdown); the next start completes each with one create', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200, server: { shutdown_timeout: '1' } });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null });
    const hold = await holdToken(d);
    const videoPrompt = `async, queued at a stop [${Date.now()}]`;
    const v = await createAsync(d, videoPrompt);
    const chatPrompt = `stream, queued at a stop [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', messages: g.user(chatPrompt), stream: true });
    await rowIs(d, videoPrompt, /^queued\|\d+\|$/, 'the async job queued');
    await rowIs(d, chatPrompt, /^queued\|\d+\|$/, 'the chat job queued');
    assert.equal((await d.stop()).code, 0);
    await hold.released;
    const s = g.parseStream(await streamed);
    assert.equal(s.error.code, 'server_shutdown');
    // Neither cancelled nor closed: the next start submits them.
    assert.match(row(d, videoPrompt), /^queued\|\d+\|$/);
    assert.match(row(d, chatPrompt), /^queued\|\d+\|$/);
    assert.equal(await creates(fake, videoPrompt), 0);
    assert.equal(await creates(fake, chatPrompt), 0);
    await d.start();
    await completed(d, v.id);
    assert.equal((await ended(d, chatPrompt)).split('|')[0], 'succeeded');
    assert.equal(await creates(fake, videoPrompt), 1);
    assert.equal(await creates(fake, chatPrompt), 1);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a graceful stop waits for a submission under way: the row is running, and the next start finishes it', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200 });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    await g.fakeCall(fake, 'POST', '/__fake/arm', { route: 'POST /backend/nf/create', delay_ms: 1500 });
    const prompt = `submitting at a stop [${Date.now()}]`;
    const v = await createAsync(d, prompt);
    await rowIs(d, prompt, /^submitting\|\d+\|$/, 'the job submitting');
    assert.equal((await d.stop()).code, 0);
    // The detached job got Sora's answer before its worker exited.
    assert.match(row(d, prompt), /^running\|\d+\|task_\w+$/);
    await d.start();
    await completed(d, v.id);
    assert.equal(await creates(fake, prompt), 1);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a row found submitting at start is closed as interrupted and never sent again', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200, allowedErrors: [/control channel to the master closed/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    // Sora holds the create call open: its answer is never known.
    await g.fakeCall(fake, 'POST', '/__fake/arm', { route: 'POST /backend/nf/create', hang: true, times: -1 });
    const prompt = `submitting when the master dies [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', messages: g.user(prompt), stream: true }).catch((e) => e);
    await rowIs(d, prompt, /^submitting\|\d+\|$/, 'the job submitting');
    await waitFor(async () => (await creates(fake, prompt)) === 1, { what: 'the create call at the fake' });
    await killMaster(d);
    await streamed;
    await g.disarm(fake);
    await d.start();
    assert.equal(d.sqlite(`SELECT status || '|' || error_code || '|' || (completed_at IS NOT NULL) FROM tasks WHERE prompt = '${q(prompt)}'`),
      'failed|interrupted|1');
    assert.match(d.log(), /1 tasks left unfinished by the last run closed as failed \(interrupted\)/);
    // A job that runs now proves the workers took over whatever they were handed.
    const after = `after the restart [${Date.now()}]`;
    g.parseStream(await g.chat(d, { model: 'sora-video-10s', messages: g.user(after), stream: true }));
    assert.equal(await creates(fake, prompt), 1, 'never sent again');
    assert.doesNotMatch(d.log(), /to submit/);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('a queued job with an input image is closed after a restart: the image was not kept', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200, allowedErrors: [/control channel to the master closed/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null });
    const hold = await holdToken(d);
    const png = (await g.pngBytes(fake)).toString('base64');
    const prompt = `image to video, queued [${Date.now()}]`;
    const streamed = g.chat(d, { model: 'sora-video-10s', stream: true, messages: [{ role: 'user', content: [
      { type: 'text', text: prompt }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] }] })
      .catch((e) => e);
    await rowIs(d, prompt, /^queued\|\d+\|$/, 'the job queued');
    assert.equal(d.sqlite(`SELECT json_extract(params, '$.image') FROM tasks WHERE prompt = '${q(prompt)}'`), '1');
    await killMaster(d);
    await streamed;
    await hold.released;
    await d.start();
    assert.equal(d.sqlite(`SELECT status || '|' || error_code FROM tasks WHERE prompt = '${q(prompt)}'`), 'failed|interrupted');
    assert.match(d.sqlite(`SELECT error_message FROM tasks WHERE prompt = '${q(prompt)}'`), /input image was not kept/);
    const j = await fake.journal('');
    assert.equal(j.entries.filter((e) => e.path === '/backend/uploads').length, 0, 'no upload');
    assert.equal(await creates(fake, prompt), 0);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});

test('videos of another owner are 404 for this key; /api/tasks shows every owner; jobs record their owner', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200 });
  const { d } = ctx;
  try {
    const mine = 'job_0000000000000000000000a1';
    const other = 'job_0000000000000000000000b2';
    const video = (owner, prompt) => ({ model: 'sora-video-10s', status: 'succeeded', progress: 100, owner, prompt,
      result_urls: ['http://127.0.0.1:9/media/x.mp4'], params: { api_model: 'sora-2', generation_id: 'gen_x', token_id: 1 } });
    for (const [id, owner] of [[mine, 1], [other, 2]]) {
      const r = await request(d.base, 'POST', '/__test/record', { body: json({ job_id: id, task: video(owner, `owned by ${owner}`) }) });
      assert.equal(r.status, 202);
    }
    await waitFor(() => d.sqlite(`SELECT count(*) FROM tasks WHERE job_id IN ('${mine}', '${other}')`) === '2', { what: 'both rows' });
    const ok = await getVideo(d, mine);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.prompt, 'owned by 1');
    const notFound = (r) => {
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.error.code, 'not_found');
      assert.equal(r.json.error.type, 'invalid_request_error');
    };
    notFound(await getVideo(d, other));
    notFound(await request(d.base, 'GET', `/v1/videos/${other}/content`, { headers: AUTH }));
    notFound(await request(d.base, 'DELETE', `/v1/videos/${other}`, { headers: AUTH }));
    notFound(await request(d.base, 'POST', `/v1/videos/${other}/remix`, {
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH), body: json({ prompt: 'again' }) }));
    const list = await request(d.base, 'GET', '/v1/videos?limit=100', { headers: AUTH });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.data.map((x) => x.id), [mine]);
    // A cursor of another owner's row pages nothing of theirs.
    const past = await request(d.base, 'GET', `/v1/videos?after=${other}&order=asc`, { headers: AUTH });
    assert.deepEqual(past.json.data.map((x) => x.id), []);
    // The row was not deleted; the admin sees both, with their owners.
    const tasks = (await request(d.base, 'GET', '/api/tasks', { headers: ctx.H })).json.tasks;
    assert.deepEqual(tasks.filter((t) => t.job_id === mine || t.job_id === other).map((t) => [t.job_id, t.owner]).sort(),
      [[mine, 1], [other, 2]]);
    // A job started through the API belongs to the key (id 1).
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const v = await createAsync(d, `an owned job [${Date.now()}]`);
    assert.equal(d.sqlite(`SELECT owner FROM tasks WHERE job_id = '${v.id}'`), '1');
    await completed(d, v.id);
    notFound(await request(d.base, 'DELETE', `/v1/videos/${other}`, { headers: AUTH }));
    assert.equal((await request(d.base, 'DELETE', `/v1/videos/${mine}`, { headers: AUTH })).status, 200);
    assert.equal(d.sqlite(`SELECT count(*) FROM tasks WHERE job_id = '${other}'`), '1');
  } finally {
    await stopPool(ctx);
  }
});

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

test('a database that refuses the first row fails the job with 503 before anything is sent', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 200, allowedErrors: [/database writes are failing/] });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const unlock = await lockDatabase(d);
    const chatPrompt = `refused row, chat [${Date.now()}]`;
    const r = await g.chat(d, { model: 'sora-video-10s', messages: g.user(chatPrompt) });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'database');
    assert.equal(r.json.error.type, 'server_error');
    const videoPrompt = `refused row, async video [${Date.now()}]`;
    const v = await request(d.base, 'POST', '/v1/videos', {
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH), body: json({ prompt: videoPrompt, model: 'sora-2' }) });
    assert.equal(v.status, 503, v.text);
    assert.equal(v.json.error.code, 'database');
    await unlock();
    // The request logs wait in the queue; no task row was ever made.
    await waitFor(() => d.sqlite("SELECT count(*) FROM request_logs WHERE status_code = 503 AND operation = 'generate_video'") === '2',
      { what: 'the two failures logged' });
    assert.equal(d.sqlite(`SELECT count(*) FROM tasks WHERE prompt IN ('${q(chatPrompt)}', '${q(videoPrompt)}')`), '0');
    assert.equal(await creates(fake, chatPrompt), 0);
    assert.equal(await creates(fake, videoPrompt), 0);
    // Writable again: jobs run.
    const ok = await g.chat(d, { model: 'sora-video-10s', messages: g.user(`after the lock [${Date.now()}]`) });
    assert.equal(ok.status, 200, ok.text);
  } finally {
    await stopPool(ctx);
  }
});
