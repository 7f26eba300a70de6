'use strict';
// GET /metrics (Prometheus text format 0.0.4): a known workload, then a
// scrape from every worker with identical numbers and exact counts; the
// access rule ([metrics] allow, metrics_token, admin session); the
// upstream health in /readyz?verbose=1 and /api/stats; jobs waiting for
// a busy token; cache hits (a download avoided, files served); waits for
// a contended shm lock; a worker killed with a running job (ended once,
// gone from the running gauge, its restart counted once the new worker
// is ready).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const parsePrometheusTextFormat = require('parse-prometheus-text-format');
const { Daemon, request, adminLogin, sleep, waitFor, AUTH } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { user } = g;
let ctx;
let tok;

before(async () => {
  ctx = await g.startGenPool({
    workers: 2,
    // A new worker serves at once but reports ready 600 ms later: a test
    // sees a respawned worker that is up and not yet counted.
    env: { SORA2API_TEST_READY_DELAY_MS: '600' },
    allowedErrors: [/worker \d+ \(pid \d+\) killed by signal 9/],
  });
  tok = await g.addToken(ctx, {}, { remaining: null, max_concurrent: 0 });
});
after(() => stopPool(ctx));

// Lines the exposition format allows: comments (HELP/TYPE), blank lines
// and samples `name{labels} value`. Anything else fails the test.
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^\\"\n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/;
function strict(text) {
  assert.ok(text.endsWith('\n'));
  const typed = new Set();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (t) {
      assert.ok(!typed.has(t[1]), `TYPE twice: ${t[1]}`);
      typed.add(t[1]);
      continue;
    }
    assert.match(line, SAMPLE);
    const name = line.split(/[{ ]/)[0].replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(name) || typed.has(line.split(/[{ ]/)[0]), `no TYPE before ${line}`);
  }
}

// One worker's answer: /__test/worker and /metrics on one keep-alive
// connection, so both come from the same process.
async function scrapeOne() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const w = await request(ctx.d.base, 'GET', '/__test/worker', { agent });
    const m = await request(ctx.d.base, 'GET', '/metrics', { agent });
    assert.equal(m.status, 200, m.text);
    assert.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return { pid: w.json.pid, text: m.text };
  } finally {
    agent.destroy();
  }
}

// A scrape of every worker (two), each parsed.
async function scrapeAll() {
  const seen = new Map();
  for (let i = 0; i < 200 && seen.size < 2; i++) {
    const s = await scrapeOne();
    if (!seen.has(s.pid)) seen.set(s.pid, s.text);
  }
  assert.equal(seen.size, 2, 'both workers answered');
  return [...seen.values()];
}

// A strict parse into {name: {labelsKey: value}} (labels in the order
// written, `le` included), without what a scrape itself moves (the
// metrics and test routes, the lock statistics). The library parse must
// accept the document too.
function flatten(text) {
  parsePrometheusTextFormat(text);
  strict(text);
  const out = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line);
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^\\"])*)"/g)) labels[k] = v;
    if (m[1].startsWith('sora2api_shm_lock_')) continue;
    if (labels.route === 'metrics' || labels.route === 'test') continue;
    (out[m[1]] = out[m[1]] || {})[JSON.stringify(labels)] = m[3];
  }
  return out;
}

const val = (flat, name, labels) => {
  const v = flat[name] && flat[name][JSON.stringify(labels)];
  return v === undefined ? undefined : Number(v);
};

test('a known workload gives the same exact counts from both workers', async () => {
  const chats = [];
  for (let i = 0; i < 3; i++) {
    chats.push(g.chat(ctx.d, { model: 'sora-image', messages: user(`metrics ok ${i}`) }));
  }
  chats.push(g.chat(ctx.d, { model: 'sora-image', messages: user('#fail metrics') }));
  const answers = await Promise.all(chats);
  for (const r of answers) assert.ok(r.status > 0);
  for (let i = 0; i < 5; i++) {
    const r = await request(ctx.d.base, 'GET', '/v1/models', { headers: AUTH });
    assert.equal(r.status, 200);
  }
  const nf = await request(ctx.d.base, 'GET', '/v1/no-such-thing', { headers: AUTH });
  assert.equal(nf.status, 404);
  // One request of each class the admin and data routes have.
  for (const [p, h] of [['/v1/videos', AUTH], ['/v1/stats', AUTH], ['/api/keys', ctx.H], ['/api/webhooks', ctx.H]]) {
    const r = await request(ctx.d.base, 'GET', p, { headers: h });
    assert.equal(r.status, 200, `${p}: ${r.text}`);
  }
  await sleep(300); // a request is counted once its answer is written

  let texts, a, b;
  for (let tries = 0; ; tries++) {
    texts = await scrapeAll();
    [a, b] = texts.map(flatten);
    try {
      assert.deepEqual(a, b);
      break;
    } catch (e) {
      if (tries > 5) throw e;
      await sleep(200);
    }
  }
  for (const t of texts) strict(t);

  assert.equal(val(a, 'sora2api_jobs_total', { kind: 'image', state: 'succeeded' }), 3);
  assert.equal(val(a, 'sora2api_jobs_total', { kind: 'image', state: 'failed' }), 1);
  assert.equal(val(a, 'sora2api_jobs_total', { kind: 'video', state: 'succeeded' }), 0);
  assert.equal(val(a, 'sora2api_jobs_running', { kind: 'image' }), 0);
  assert.equal(val(a, 'sora2api_job_duration_seconds_count', { kind: 'image' }), 4);
  assert.equal(val(a, 'sora2api_job_duration_seconds_bucket', { kind: 'image', le: '+Inf' }), 4);
  assert.equal(val(a, 'sora2api_http_requests_total', { route: 'models', code: '200' }), 5);
  assert.equal(val(a, 'sora2api_http_requests_total', { route: 'unknown', code: '404' }), 1);
  for (const route of ['videos', 'data', 'keys', 'webhooks']) {
    assert.equal(val(a, 'sora2api_http_requests_total', { route, code: '200' }), 1, route);
  }
  // Every route the daemon has is in a class of its own name.
  assert.ok(!Object.keys(a.sora2api_http_requests_total).some((k) => JSON.parse(k).route === 'other'));
  assert.equal(val(a, 'sora2api_jobs_queued', { kind: 'image' }), 0);
  assert.equal(val(a, 'sora2api_jobs_queued', { kind: 'video' }), 0);
  assert.equal(val(a, 'sora2api_cache_hits_total', { kind: 'reuse' }), 0);
  assert.equal(val(a, 'sora2api_cache_hits_total', { kind: 'served' }), 0);
  assert.equal(val(a, 'sora2api_cache_downloads_total', {}), 0);
  let chatTotal = 0;
  for (const [k, v] of Object.entries(a.sora2api_http_requests_total)) {
    if (JSON.parse(k).route === 'chat') chatTotal += Number(v);
  }
  assert.equal(chatTotal, 4);
  assert.equal(val(a, 'sora2api_http_request_duration_seconds_count', { route: 'models' }), 5);
  // Buckets are cumulative and end at the count.
  const les = Object.entries(a.sora2api_http_request_duration_seconds_bucket)
    .filter(([k]) => JSON.parse(k).route === 'models').map(([, v]) => Number(v));
  assert.equal(les.length, 15);
  for (let i = 1; i < les.length; i++) assert.ok(les[i] >= les[i - 1]);
  assert.equal(les[les.length - 1], 5);
  // Each generation submitted once to the image endpoint.
  assert.equal(val(a, 'sora2api_upstream_calls_total', { endpoint: 'video_gen', status: '2xx' }), 4);
  assert.equal(val(a, 'sora2api_upstream_recent_calls', { endpoint: 'video_gen' }), 4);
  assert.equal(val(a, 'sora2api_tokens', { state: 'active' }), 1);
  assert.equal(val(a, 'sora2api_leases_inflight', {}), 0);
  assert.equal(val(a, 'sora2api_workers', { state: 'ready' }), 2);
  assert.equal(val(a, 'sora2api_worker_restarts_total', {}), 0);
  assert.ok(val(a, 'sora2api_record_queue_length', {}) >= 0);
  // Lock statistics exist (they move with every scrape).
  assert.match(texts[0], /^sora2api_shm_lock_holds_total [1-9][0-9]*$/m);
  // No secrets: no e-mail or access token in the document.
  assert.doesNotMatch(texts[0], /@|eyJ/);

  const rz = await request(ctx.d.base, 'GET', '/readyz?verbose=1');
  assert.equal(rz.status, 200, rz.text);
  assert.equal(rz.json.upstream.video_gen.calls, 4);
  assert.equal(rz.json.upstream.video_gen.failures, 0);
  assert.equal(rz.json.upstream.video_gen.failure_rate, 0);
  const plain = await request(ctx.d.base, 'GET', '/readyz');
  assert.equal(plain.json.upstream, undefined);
  // /api/stats: the master's figures as before, and the same health.
  const st = await request(ctx.d.base, 'GET', '/api/stats', { headers: ctx.H });
  assert.equal(st.status, 200, st.text);
  assert.equal(st.json.total_tokens, 1);
  assert.equal(st.json.total_images, 3);
  assert.deepEqual(Object.keys(st.json.upstream).sort(), Object.keys(rz.json.upstream).sort());
  assert.deepEqual(st.json.upstream.video_gen, rz.json.upstream.video_gen);
  assert.deepEqual(Object.keys(st.json.upstream.video_gen).sort(), ['calls', 'failure_rate', 'failures', 'latency_ms']);
});

test('access: allow list, metrics_token, admin session', async () => {
  const d = await new Daemon({ conf: { metrics: { allow: '192.0.2.1', metrics_token: 'm-token-123' } } }).start();
  try {
    let r = await request(d.base, 'GET', '/metrics');
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
    r = await request(d.base, 'GET', '/metrics', { headers: { Authorization: 'Bearer wrong' } });
    assert.equal(r.status, 403);
    r = await request(d.base, 'GET', '/metrics', { headers: { Authorization: 'Bearer m-token-12' } });
    assert.equal(r.status, 403);
    r = await request(d.base, 'GET', '/metrics', { headers: AUTH }); // the API key is not enough
    assert.equal(r.status, 403);
    r = await request(d.base, 'GET', '/metrics', { headers: { Authorization: 'Bearer m-token-123' } });
    assert.equal(r.status, 200);
    parsePrometheusTextFormat(r.text);
    strict(r.text);
    const H = await adminLogin(d);
    r = await request(d.base, 'GET', '/metrics', { headers: H });
    assert.equal(r.status, 200);
  } finally {
    await d.stop();
    d.cleanup();
  }
  // The default: loopback reads without a credential.
  const r = await request(ctx.d.base, 'GET', '/metrics');
  assert.equal(r.status, 200);
});

// One scrape (any worker: the numbers are shared), parsed.
async function scrape() {
  const r = await request(ctx.d.base, 'GET', '/metrics');
  assert.equal(r.status, 200, r.text);
  return flatten(r.text);
}

// Waits until `pred(scrape)` holds and returns that scrape.
const scrapeUntil = (pred, what, opts = {}) => waitFor(async () => {
  const f = await scrape();
  return pred(f) ? f : false;
}, Object.assign({ what }, opts));

const admin = (method, p, body) => request(ctx.d.base, method, p, {
  headers: Object.assign({ 'Content-Type': 'application/json' }, ctx.H),
  body: body === undefined ? undefined : JSON.stringify(body),
});

// A streamed chat request held open until abort(); `first` resolves
// once the answer's head and first chunk came.
function openStream(body) {
  let req;
  const first = new Promise((resolve, reject) => {
    req = http.request(new URL('/v1/chat/completions', ctx.d.base), {
      method: 'POST', agent: false,
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    }, (res) => {
      res.once('data', () => resolve(res));
      res.on('error', () => {});
    });
    req.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
    req.end(JSON.stringify(Object.assign({ stream: true }, body)));
  });
  return { first, abort: () => req.destroy() };
}

// One keep-alive connection per worker: [[pid, agent], ...].
async function pinnedAgents() {
  const agents = new Map();
  for (let i = 0; i < 200 && agents.size < 2; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const w = await request(ctx.d.base, 'GET', '/__test/worker', { agent });
    if (agents.has(w.json.pid)) agent.destroy();
    else agents.set(w.json.pid, agent);
  }
  assert.equal(agents.size, 2, 'reached both workers');
  return [...agents.entries()];
}

test('jobs waiting for a busy token: sora2api_jobs_queued, within jobs_running, summed over workers', async () => {
  const was = (await g.tokenById(ctx, tok.id)).video_concurrency;
  assert.equal((await admin('PUT', `/api/tokens/${tok.id}`, { video_concurrency: 1 })).status, 200);
  try {
    const base = await scrape();
    const jobs = (f, state) => val(f, 'sora2api_jobs_total', { kind: 'video', state }) - val(base, 'sora2api_jobs_total', { kind: 'video', state });
    // The one video slot is taken by a job Sora never finishes.
    const held = openStream({ model: 'sora-video-10s', messages: user('metrics holds the token #stall') });
    await held.first;
    await scrapeUntil((f) => val(f, 'sora2api_token_inflight', { token_id: String(tok.id), kind: 'video' }) === 1,
      'the stalled job holding the token');
    const waiting = [0, 1].map((i) => g.chat(ctx.d, { model: 'sora-video-10s', messages: user(`metrics waits ${i}`) },
      { timeout: 60000 }));
    const q = await scrapeUntil((f) => val(f, 'sora2api_jobs_queued', { kind: 'video' }) === 2, 'two jobs queued');
    assert.equal(val(q, 'sora2api_jobs_running', { kind: 'video' }), 3);
    assert.equal(val(q, 'sora2api_jobs_queued', { kind: 'image' }), 0);
    // Both workers show the same gauges.
    const [a, b] = (await scrapeAll()).map(flatten);
    assert.deepEqual(a.sora2api_jobs_queued, b.sora2api_jobs_queued);
    assert.equal(val(a, 'sora2api_jobs_queued', { kind: 'video' }), 2);
    // The stalled job's client leaves: the waiting ones run, one by one.
    held.abort();
    for (const r of await Promise.all(waiting)) assert.equal(g.parseCompletion(r).type, 'video', r.text);
    const end = await scrapeUntil((f) => val(f, 'sora2api_jobs_running', { kind: 'video' }) === 0, 'no video running');
    assert.equal(val(end, 'sora2api_jobs_queued', { kind: 'video' }), 0);
    assert.equal(jobs(end, 'succeeded'), 2);
    assert.equal(jobs(end, 'cancelled'), 1);
    assert.equal(jobs(end, 'failed'), 0);
  } finally {
    assert.equal((await admin('PUT', `/api/tokens/${tok.id}`, { video_concurrency: was })).status, 200);
  }
});

test('cache hits: a result download avoided (reuse), cached files served from /tmp/ and video content', async () => {
  assert.equal((await admin('POST', '/api/cache/enabled', { enabled: true })).status, 200);
  // Every image of this keyword is one and the same upstream file.
  await g.fakeCall(ctx.fake, 'POST', '/__fake/script', { keywords: { '#samepic': { image: { path: '/media/img/metrics-same.png' } } } });
  try {
    const base = await scrape();
    const delta = (f, name, labels) => val(f, name, labels) - val(base, name, labels);
    const names = [];
    for (let i = 0; i < 2; i++) {
      const r = await g.chat(ctx.d, { model: 'sora-image', messages: user(`metrics one picture ${i} #samepic`) });
      assert.equal(g.parseCompletion(r).type, 'image', r.text);
      names.push(/\/tmp\/([0-9a-f]{32}\.png)/.exec(r.text)[1]);
    }
    assert.equal(names[0], names[1], 'one cached file for one upstream file');
    let f = await scrape();
    assert.equal(delta(f, 'sora2api_cache_downloads_total', {}), 1);
    assert.equal(delta(f, 'sora2api_cache_hits_total', { kind: 'reuse' }), 1);
    assert.equal(delta(f, 'sora2api_cache_hits_total', { kind: 'served' }), 0);
    // Served: the whole file and a range; a 304 and a miss send none.
    const whole = await request(ctx.d.base, 'GET', `/tmp/${names[0]}`);
    assert.equal(whole.status, 200);
    assert.equal((await request(ctx.d.base, 'GET', `/tmp/${names[0]}`, { headers: { Range: 'bytes=0-3' } })).status, 206);
    assert.equal((await request(ctx.d.base, 'GET', `/tmp/${names[0]}`, { headers: { 'If-None-Match': whole.headers.etag } })).status, 304);
    assert.equal((await request(ctx.d.base, 'GET', '/tmp/0123456789abcdef0123456789abcdef.png')).status, 404);
    f = await scrape();
    assert.equal(delta(f, 'sora2api_cache_hits_total', { kind: 'served' }), 2);
    // A cached video's content and thumbnail, through the Videos API.
    const v = await request(ctx.d.base, 'POST', '/v1/videos', {
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
      body: JSON.stringify({ model: 'sora-video-10s', prompt: 'metrics a cached video' }), timeout: 60000,
    });
    assert.equal(v.status, 200, v.text);
    assert.equal(v.json.status, 'completed', v.text);
    f = await scrape();
    assert.equal(delta(f, 'sora2api_cache_downloads_total', {}), 3, 'the video and its thumbnail');
    for (const q of ['', '?variant=thumbnail']) {
      const c = await request(ctx.d.base, 'GET', `/v1/videos/${v.json.id}/content${q}`, { headers: AUTH });
      assert.equal(c.status, 200, c.text);
    }
    f = await scrape();
    assert.equal(delta(f, 'sora2api_cache_hits_total', { kind: 'served' }), 4);
    assert.equal(delta(f, 'sora2api_cache_hits_total', { kind: 'reuse' }), 1);
  } finally {
    await g.fakeCall(ctx.fake, 'POST', '/__fake/script', { keywords: { '#samepic': null } });
    assert.equal((await admin('POST', '/api/cache/enabled', { enabled: false })).status, 200);
  }
});

// The shm lock figures of a raw document.
function lockFigures(text) {
  const num = (name) => {
    const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
    assert.ok(m, `${name} in the document`);
    return Number(m[1]);
  };
  return {
    waits: num('sora2api_shm_lock_waits_total'),
    seconds: num('sora2api_shm_lock_wait_seconds_total'),
    max: num('sora2api_shm_lock_wait_max_seconds'),
    holds: num('sora2api_shm_lock_holds_total'),
  };
}

test('shm lock waits: an acquisition that finds the lock taken counts, with its wait', async () => {
  const [[, holder], [, other]] = await pinnedAgents();
  try {
    const m0 = await request(ctx.d.base, 'GET', '/metrics', { agent: other });
    strict(m0.text);
    const before = lockFigures(m0.text);
    assert.ok(Number.isInteger(before.waits) && before.waits >= 0);
    assert.ok(before.seconds >= 0 && before.max >= 0);
    assert.ok(before.seconds >= before.max);
    // One worker holds the lock 400 ms; the other sees it taken (a
    // trylock, not counted), then scrapes, and its lock waits.
    const hold = request(ctx.d.base, 'GET', '/__test/hold-lock?ms=400', { agent: holder });
    await waitFor(async () => (await request(ctx.d.base, 'GET', '/__test/lock-busy', { agent: other })).json.busy,
      { interval: 5, what: 'the lock taken by the other worker' });
    const m1 = await request(ctx.d.base, 'GET', '/metrics', { agent: other });
    assert.equal((await hold).status, 200);
    const after = lockFigures(m1.text);
    assert.ok(after.waits >= before.waits + 1, `${after.waits} waits after ${before.waits}`);
    assert.ok(after.seconds > before.seconds);
    assert.ok(after.max > 0 && after.max <= after.seconds);
    assert.ok(after.max < 5, 'a wait bounded by the hold');
    parsePrometheusTextFormat(m1.text);
  } finally {
    holder.destroy();
    other.destroy();
  }
});

// Last: it kills a worker.
test('a worker killed with a running job: the job ends once (failed), leaves the running gauge, the restart counts once the new worker is ready', async () => {
  const [[pid, agent], [, other]] = await pinnedAgents();
  other.destroy();
  const base = await scrape();
  const delta = (f, name, labels) => val(f, name, labels) - val(base, name, labels);
  assert.equal(val(base, 'sora2api_jobs_running', { kind: 'video' }), 0);
  // Sora never answers the submit: the job runs until its worker dies.
  await ctx.fake.arm({ route: 'POST /backend/nf/create', hang: true, times: -1 });
  try {
    const w = await request(ctx.d.base, 'GET', '/__test/worker', { agent });
    assert.equal(w.json.pid, pid);
    const held = request(ctx.d.base, 'POST', '/v1/chat/completions', {
      agent, timeout: 30000,
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
      body: JSON.stringify({ model: 'sora-video-10s', messages: user('metrics a job its worker takes down') }),
    }).catch((e) => e);
    await scrapeUntil((f) => val(f, 'sora2api_jobs_running', { kind: 'video' }) === 1, 'the job running');
    process.kill(pid, 'SIGKILL');
    assert.ok((await held) instanceof Error, 'the request lost its worker');
    // The replacement is up but not ready: not a restart yet, and the
    // dead worker's job is no longer running.
    const up = await scrapeUntil((f) => val(f, 'sora2api_workers', { state: 'starting' }) === 1,
      'the replacement starting', { interval: 10 });
    assert.equal(delta(up, 'sora2api_worker_restarts_total', {}), 0);
    assert.equal(val(up, 'sora2api_jobs_running', { kind: 'video' }), 0);
    const ready = await scrapeUntil((f) => val(f, 'sora2api_workers', { state: 'ready' }) === 2
      && delta(f, 'sora2api_jobs_total', { kind: 'video', state: 'failed' }) === 1, 'the replacement ready, the job ended',
    // A worker's start under ASan, beside another test file, can pass 10 s.
    { timeout: 30000 });
    assert.equal(delta(ready, 'sora2api_worker_restarts_total', {}), 1);
    assert.equal(val(ready, 'sora2api_workers', { state: 'starting' }), 0);
    assert.equal(delta(ready, 'sora2api_job_duration_seconds_count', { kind: 'video' }), 1);
    assert.equal(delta(ready, 'sora2api_jobs_total', { kind: 'video', state: 'succeeded' }), 0);
    assert.equal(delta(ready, 'sora2api_jobs_total', { kind: 'video', state: 'cancelled' }), 0);
    assert.equal(val(ready, 'sora2api_jobs_running', { kind: 'video' }), 0);
  } finally {
    await g.disarm(ctx.fake);
    agent.destroy();
  }
  // Counted once: later batches (another job's records) leave it so.
  const r = await g.chat(ctx.d, { model: 'sora-image', messages: user('metrics after the kill') });
  assert.equal(g.parseCompletion(r).type, 'image');
  const later = await scrape();
  assert.equal(delta(later, 'sora2api_jobs_total', { kind: 'video', state: 'failed' }), 1);
  assert.equal(delta(later, 'sora2api_worker_restarts_total', {}), 1);
  assert.equal(val(later, 'sora2api_jobs_running', { kind: 'video' }), 0);
  assert.match(ctx.d.log(), /1 tasks of worker pid \d+ closed as failed \(worker_died\)/);
});
