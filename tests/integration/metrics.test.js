'use strict';
// GET /metrics (Prometheus text format 0.0.4): a known workload, then a
// scrape from every worker with identical numbers and exact counts; the
// access rule ([metrics] allow, metrics_token, admin session); the
// upstream health in /readyz?verbose=1.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const parsePrometheusTextFormat = require('parse-prometheus-text-format');
const { Daemon, request, adminLogin, sleep, AUTH } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { user } = g;
let ctx;

before(async () => {
  ctx = await g.startGenPool({ workers: 2 });
  await g.addToken(ctx, {}, { remaining: null, max_concurrent: 0 });
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
