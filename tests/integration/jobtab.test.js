'use strict';
// The live job table (docs/locking.md, "The job table"): GET
// /v1/videos/{id} answered by any worker from shared memory, with the
// same Video object the master's row gives at every state (queued,
// in_progress, completed, failed, cancelled); deletes, long prompts and
// another key's video; eviction in a tiny table (the first finished job
// goes, a running one never does, a job with no slot is read from the
// database); a worker killed with kill -9 leaves no slot in_progress
// forever.
//
// Which source answered is proven per worker: the retrieve and
// /__test/jobtab (the worker's last source, the shared counters) go over
// one keep-alive connection, so they reach the same process. The
// master's answer for comparison is the same retrieve with the table
// bypassed (/__test/jobtab?bypass=1 on that connection).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Daemon, request, adminLogin, waitFor, pidAlive, AUTH } = require('./lib/daemon');
const { startFake, stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const json = (o) => JSON.stringify(o);
const q = (s) => s.replace(/'/g, "''");
let nonce = 0;
const tag = (s) => `${s} [jt${++nonce} ${Date.now()}]`;
// A video that stays in progress at 40 % (the fake's stall outcome).
const HOLD = { keywords: { '#hold': { video: { pending: [0.4], outcome: 'stall' } } } };

// A fake upstream and a daemon of `workers` polling every 50 ms, with
// `limits` (job_slots) and the quota sweep off.
async function startPool({ workers = 2, limits = {}, allowedErrors = [] } = {}) {
  const fake = await startFake();
  const conf = {
    server: { workers: String(workers) },
    upstream: Object.assign({}, fake.conf.upstream, { poll_interval_ms: '50' }),
    limits,
  };
  const d = await new Daemon({ conf, allowedErrors }).start();
  const H = await adminLogin(d);
  const r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ quota_refresh_interval: 0 }) });
  assert.equal(r.status, 200, r.text);
  await g.fakeCall(fake, 'POST', '/__fake/script', HOLD);
  return { fake, d, H };
}

function create(d, body, agent) {
  return request(d.base, 'POST', '/v1/videos', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json(Object.assign({ model: 'sora-video-10s', async: true }, body)), agent, timeout: 30000,
  });
}

// One worker's answer to GET /v1/videos/{id}, and where it came from:
// {r, src ('table' | 'master'), pid, hook}. `bypass`: from the master.
async function retrieveOne(d, id, { bypass = false } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    if (bypass) await request(d.base, 'GET', '/__test/jobtab?bypass=1', { agent });
    const r = await request(d.base, 'GET', `/v1/videos/${id}`, { headers: AUTH, agent });
    const t = await request(d.base, 'GET', `/__test/jobtab?id=${id}`, { agent });
    assert.equal(t.status, 200, t.text);
    return { r, src: t.json.last, pid: t.json.pid, hook: t.json };
  } finally {
    agent.destroy();
  }
}

let bypassed = 0; // retrieves sameEverywhere sent to the master

// The table's and the master's answers from every worker: asserts the
// table answered, and that both say the same (status, headers that
// matter, body). Resolves the table's answers.
async function sameEverywhere(d, id, n = 2) {
  const seen = new Map();
  for (let i = 0; i < 300 && seen.size < n; i++) {
    const t = await retrieveOne(d, id);
    if (seen.has(t.pid)) continue;
    assert.equal(t.src, 'table', `worker ${t.pid} answered ${id} from the table`);
    let m;
    do {
      m = await retrieveOne(d, id, { bypass: true });
      bypassed++;
    } while (m.pid !== t.pid);
    assert.equal(m.src, 'master');
    assert.equal(t.r.status, m.r.status);
    assert.deepEqual(t.r.json, m.r.json, `${id}: the table's object is the master's`);
    assert.equal(t.r.headers['openai-poll-after-ms'], m.r.headers['openai-poll-after-ms']);
    assert.equal(t.r.headers['content-type'], m.r.headers['content-type']);
    seen.set(t.pid, t.r);
  }
  assert.equal(seen.size, n, 'every worker answered');
  return [...seen.values()];
}

// Retrieves (from whichever worker) until `pred` accepts the object.
async function until(d, id, pred, what) {
  let last;
  await waitFor(async () => {
    last = (await retrieveOne(d, id)).r.json;
    return pred(last);
  }, { timeout: 20000, what: `${id} ${what} (last: ${JSON.stringify(last)})` });
  return last;
}

const counters = async (d) => (await request(d.base, 'GET', '/__test/jobtab')).json;

let ctx;
before(async () => {
  ctx = await startPool();
  // One video at a time on this account: a second job waits, queued.
  await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null, max_concurrent: 0 });
});
after(() => stopPool(ctx));

test('every state of a job, from every worker: the table answers, with the object the master\'s row gives', async () => {
  const { d } = ctx;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // in_progress: the account's one video slot is held at 40 %.
  const held = await create(d, { prompt: tag('#hold a held video'), model: 'sora-2' }, agent);
  assert.equal(held.status, 200, held.text);
  const hid = held.json.id;
  await until(d, hid, (v) => v.status === 'in_progress' && v.progress === 40, 'in progress at 40 %');
  const before1 = await counters(d);
  const bypassed1 = bypassed;
  const running = await sameEverywhere(d, hid);
  for (const r of running) {
    assert.equal(r.json.status, 'in_progress');
    assert.equal(r.json.progress, 40, 'the progress the job has');
    assert.equal(r.json.model, 'sora-2');
    assert.equal(r.json.size, '720x1280');
    assert.match(r.headers['openai-poll-after-ms'], /^50$/);
    assert.equal(r.json.created_at, held.json.created_at, 'the create answer\'s created_at');
  }
  // Every table read was a hit: the fallbacks that moved are the
  // bypassed reads, no more.
  const after1 = await counters(d);
  assert.equal(after1.fallbacks - before1.fallbacks, bypassed - bypassed1);
  assert.ok(after1.hits - before1.hits >= 2);

  // queued: waiting for the account.
  const queued = await create(d, { prompt: tag('a queued video'), size: '1280x720', seconds: 4 }, agent);
  const qid = queued.json.id;
  const q1 = await sameEverywhere(d, qid);
  assert.equal(q1[0].json.status, 'queued');
  assert.equal(q1[0].json.progress, 0);
  assert.deepEqual(q1[0].json, queued.json, 'the queued object is the create answer');
  // A second account lets it through: completed.
  await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null, max_concurrent: 0 });
  await until(d, qid, (v) => v.status === 'completed', 'completed');
  const done = await sameEverywhere(d, qid);
  assert.equal(done[0].json.progress, 100);
  assert.equal(done[0].json.size, '1280x720');
  assert.match(done[0].json.data[0].url, /^http:\/\/.+\.mp4$/);
  assert.equal(done[0].headers['openai-poll-after-ms'], undefined);
  assert.equal(d.sqlite(`SELECT status FROM tasks WHERE job_id = '${qid}'`), 'succeeded');

  // failed, with the row's code and message.
  const failing = await create(d, { prompt: tag('#fail a failing video') }, agent);
  await until(d, failing.json.id, (v) => v.status === 'failed', 'failed');
  const failed = await sameEverywhere(d, failing.json.id);
  assert.equal(failed[0].json.error.code, 'generation_failed');
  assert.ok(Number.isInteger(failed[0].json.completed_at));

  // cancelled: a synchronous create whose client leaves.
  const prompt = tag('#hold a cancelled video');
  const sync = request(d.base, 'POST', '/v1/videos', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ prompt, model: 'sora-video-10s', async: false }), timeout: 1500,
  }).catch((e) => e);
  const cid = await waitFor(() => d.sqlite(`SELECT job_id FROM tasks WHERE prompt = '${q(prompt)}'`) || null,
    { what: 'the synchronous job recorded' });
  assert.ok((await sync) instanceof Error, 'the client gave up');
  await until(d, cid, (v) => v.status === 'failed', 'cancelled');
  const cancelled = await sameEverywhere(d, cid);
  assert.equal(cancelled[0].json.error.code, 'cancelled');
  agent.destroy();
});

// One worker's answer to GET /v1/videos/{id}/content (`query` appended),
// and where it came from, as retrieveOne.
async function contentOne(d, id, { bypass = false, query = '' } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    if (bypass) await request(d.base, 'GET', '/__test/jobtab?bypass=1', { agent });
    const r = await request(d.base, 'GET', `/v1/videos/${id}/content${query}`, { headers: AUTH, agent });
    const t = await request(d.base, 'GET', '/__test/jobtab', { agent });
    return { r, src: t.json.last, pid: t.json.pid };
  } finally {
    agent.destroy();
  }
}

test('content from the table: the same bytes and errors as through the master, on every worker', async () => {
  const { d } = ctx;
  const v = await create(d, { prompt: tag('content without the master') });
  const early = await contentOne(d, v.json.id);
  assert.equal(early.r.status, 404, early.r.text);
  assert.equal(early.r.json.error.code, 'video_not_ready');
  await until(d, v.json.id, (o) => o.status === 'completed', 'completed');
  const seen = new Set();
  for (let i = 0; i < 300 && seen.size < 2; i++) {
    const t = await contentOne(d, v.json.id);
    if (seen.has(t.pid)) continue;
    assert.equal(t.src, 'table', `worker ${t.pid} served the content from the table`);
    let m;
    do {
      m = await contentOne(d, v.json.id, { bypass: true });
    } while (m.pid !== t.pid);
    assert.equal(m.src, 'master');
    assert.equal(t.r.status, 200, t.r.text);
    assert.equal(t.r.status, m.r.status);
    assert.equal(t.r.headers['content-type'], m.r.headers['content-type']);
    assert.ok(t.r.body.length > 0);
    assert.deepEqual(t.r.body, m.r.body);
    // The variants read the slot too.
    const thumb = await contentOne(d, v.json.id, { query: '?variant=thumbnail' });
    const thumbM = await contentOne(d, v.json.id, { query: '?variant=thumbnail', bypass: true });
    assert.equal(thumb.r.status, thumbM.r.status, thumb.r.text);
    assert.deepEqual(thumb.r.body, thumbM.r.body);
    const sprite = await contentOne(d, v.json.id, { query: '?variant=spritesheet' });
    assert.equal(sprite.r.status, 404);
    assert.equal(sprite.r.json.error.code, 'variant_not_available');
    seen.add(t.pid);
  }
  assert.equal(seen.size, 2, 'every worker served it');
});

test('delete drops the slot: every worker answers 404 afterwards', async () => {
  const { d } = ctx;
  const v = await create(d, { prompt: tag('a video to delete') });
  await until(d, v.json.id, (o) => o.status === 'completed', 'completed');
  await sameEverywhere(d, v.json.id);
  const del = await request(d.base, 'DELETE', `/v1/videos/${v.json.id}`, { headers: AUTH });
  assert.equal(del.status, 200, del.text);
  const seen = new Set();
  for (let i = 0; i < 300 && seen.size < 2; i++) {
    const r = await retrieveOne(d, v.json.id);
    assert.equal(r.r.status, 404, r.r.text);
    assert.equal(r.r.json.error.code, 'not_found');
    assert.equal(r.src, 'master', 'no slot left to answer from');
    assert.equal(r.hook.slot, null);
    seen.add(r.pid);
  }
  assert.equal(seen.size, 2);
});

test('a prompt the slot cannot hold, and another key\'s video: the master\'s answer, and 404', async () => {
  const { d } = ctx;
  const long = tag('a very long prompt ' + 'x'.repeat(3000));
  const v = await create(d, { prompt: long });
  await until(d, v.json.id, (o) => o.status === 'completed', 'completed');
  for (let i = 0; i < 6; i++) {
    const r = await retrieveOne(d, v.json.id);
    assert.equal(r.src, 'master');
    assert.equal(r.hook.slot.incomplete, true);
    assert.equal(r.r.json.prompt, long);
    assert.equal(r.r.json.status, 'completed');
  }
  // The slot says another API key made it: not found, as the master
  // would say once rows carry their key.
  const o = await create(d, { prompt: tag('someone else\'s video') });
  await until(d, o.json.id, (x) => x.status === 'completed', 'completed');
  await request(d.base, 'GET', `/__test/jobtab?id=${o.json.id}&owner=2`);
  const r = await retrieveOne(d, o.json.id);
  assert.equal(r.src, 'table');
  assert.equal(r.r.status, 404);
  assert.equal(r.r.json.error.code, 'not_found');
});

test('a tiny table: the first finished job goes, a running one never does, a job with no slot is read from the database', async () => {
  const pool = await startPool({ limits: { job_slots: '2' } });
  const { d } = pool;
  try {
    await g.addToken(pool, { video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
    const m0 = (await counters(d));
    assert.equal(m0.slots, 2);
    const j1 = (await create(d, { prompt: tag('#hold runs on') })).json.id;
    await until(d, j1, (v) => v.status === 'in_progress' && v.progress === 40, 'in progress');
    const j2 = (await create(d, { prompt: tag('finishes first') })).json.id;
    await until(d, j2, (v) => v.status === 'completed', 'completed');
    const j2Table = (await sameEverywhere(d, j2))[0].json;
    // j3 needs a slot: j2's (the only finished job) goes.
    const j3 = (await create(d, { prompt: tag('finishes second') })).json.id;
    await until(d, j3, (v) => v.status === 'completed', 'completed');
    let r = await retrieveOne(d, j2);
    assert.equal(r.src, 'master');
    assert.deepEqual(r.r.json, j2Table, 'the evicted job reads the same from the database');
    await sameEverywhere(d, j1);
    await sameEverywhere(d, j3);
    // j4 takes j3's slot; then both slots run jobs and j5 gets none.
    const j4 = (await create(d, { prompt: tag('#hold runs too') })).json.id;
    await until(d, j4, (v) => v.status === 'in_progress' && v.progress === 40, 'in progress');
    assert.equal((await retrieveOne(d, j3)).src, 'master');
    const j5 = (await create(d, { prompt: tag('finds no slot') })).json.id;
    const done = await until(d, j5, (v) => v.status === 'completed', 'completed');
    r = await retrieveOne(d, j5);
    assert.equal(r.src, 'master');
    assert.equal(r.hook.slot, null);
    assert.deepEqual(r.r.json, done);
    assert.equal(r.r.json.status, 'completed');
    // The running two never left.
    await sameEverywhere(d, j1);
    await sameEverywhere(d, j4);
    const m1 = await counters(d);
    assert.equal(m1.used, 2);
    assert.ok(m1.refused >= 1, `refused ${m1.refused}`);
    const metrics = (await request(d.base, 'GET', '/metrics')).text;
    assert.match(metrics, /^sora2api_jobtab_slots 2$/m);
    assert.match(metrics, /^sora2api_jobtab_slots_used 2$/m);
    assert.match(metrics, /^sora2api_jobtab_refused_total [1-9]\d*$/m);
    assert.match(metrics, new RegExp(`^sora2api_jobtab_fallbacks_total ${m1.fallbacks}$`, 'm'));
  } finally {
    await stopPool(pool);
  }
});

test('job_slots = 0: no table, every retrieve asks the master', async () => {
  const pool = await startPool({ workers: 1, limits: { job_slots: '0' } });
  const { d } = pool;
  try {
    await g.addToken(pool, {}, { remaining: null, max_concurrent: 0 });
    const v = (await create(d, { prompt: tag('no table') })).json.id;
    const done = await until(d, v, (o) => o.status === 'completed', 'completed');
    assert.equal(done.status, 'completed');
    const r = await retrieveOne(d, v);
    assert.equal(r.src, 'master');
    assert.equal(r.hook.slots, 0);
    assert.match((await request(d.base, 'GET', '/metrics')).text, /^sora2api_jobtab_slots 0$/m);
  } finally {
    await stopPool(pool);
  }
});

test('a worker killed with kill -9: its queued job is handed to a live worker to submit, its running one is resumed, from the table', async () => {
  const pool = await startPool({ allowedErrors: [/killed by signal 9/] });
  const { d } = pool;
  try {
    await g.addToken(pool, { video_concurrency: 1 }, { remaining: null, max_concurrent: 0 });
    // Both on one worker: one connection.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const run = (await create(d, { prompt: tag('#hold resumed') }, agent)).json.id;
    const wait = (await create(d, { prompt: tag('queued behind it') }, agent)).json.id;
    const w = await request(d.base, 'GET', `/__test/jobtab?id=${run}`, { agent });
    agent.destroy();
    const victim = w.json.pid;
    await until(d, run, (v) => v.status === 'in_progress' && v.progress === 40, 'in progress');
    assert.equal((await retrieveOne(d, wait)).r.json.status, 'queued');
    const before = (await retrieveOne(d, run)).hook.slot;
    assert.equal(before.worker_pid, victim);
    process.kill(victim, 'SIGKILL');
    await waitFor(() => d.workers().length === 2 && !pidAlive(victim) && !d.workers().includes(victim),
      { what: 'the worker replaced' });
    // The queued job (nothing was sent for it) is handed to a live
    // worker to submit: its slot names that worker, and it reads queued,
    // in progress or done (whichever of the two takes the token's one
    // slot first: a resumed job's lease may go past the limit), never
    // failed.
    await waitFor(async () => {
      const s = (await retrieveOne(d, wait)).hook.slot;
      return s && s.worker_pid !== victim && d.workers().includes(s.worker_pid);
    }, { what: 'the queued job handed to a live worker' });
    // (Not compared with the master's answer: once it runs, its progress
    // moves between the two reads.)
    const handed = await retrieveOne(d, wait);
    assert.equal(handed.src, 'table');
    assert.ok(['queued', 'in_progress', 'completed'].includes(handed.r.json.status), handed.r.json.status);
    assert.equal(handed.r.json.error, null);
    assert.match(d.sqlite(`SELECT status FROM tasks WHERE job_id = '${wait}'`), /^(queued|submitting|running|succeeded)$/);
    // The running one is another worker's now, still at 40 %.
    await waitFor(async () => {
      const s = (await retrieveOne(d, run)).hook.slot;
      return s && s.worker_pid !== victim && d.workers().includes(s.worker_pid);
    }, { what: 'the slot handed to a live worker' });
    const resumed = await sameEverywhere(d, run);
    assert.equal(resumed[0].json.status, 'in_progress');
    assert.equal(resumed[0].json.progress, 40);
    assert.equal(d.sqlite(`SELECT status FROM tasks WHERE job_id = '${run}'`), 'running');
  } finally {
    await stopPool(pool);
  }
});
