'use strict';
// Named API keys (docs/api-keys.md) against the real daemon (two workers)
// and the fake upstream: the admin API, the key shown once and stored as
// a MAC, requests per minute exact across workers with the x-ratelimit
// headers, revocation and expiry seen by every worker at once, the model
// allow-list, concurrency with stalled jobs (released when a client
// leaves and when a worker dies), quotas across a period boundary and
// after a restart, usage rows and their CSV, token groups, and the
// per-key /metrics lines for a known workload.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { request, waitFor, AUTH } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

let ctx;
let d;
let H;
let nonce = 0;
const tag = (s) => `${s} [k${++nonce}]`;

before(async () => {
  ctx = await g.startGenPool({
    workers: 2,
    allowedErrors: [/worker \d+ \(pid \d+\) killed by signal 9/],
  });
  ({ d, H } = ctx);
  // One account that takes any number of jobs: limits come from keys.
  await g.addToken(ctx, { image_concurrency: 0, video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
});
after(() => stopPool(ctx));

const bearer = (key) => ({ Authorization: `Bearer ${key}` });
const admin = (method, p, body) => request(d.base, method, p, {
  headers: Object.assign({ 'Content-Type': 'application/json' }, H),
  body: body === undefined ? undefined : JSON.stringify(body),
});

async function newKey(fields) {
  const r = await admin('POST', '/api/keys', Object.assign({ name: tag('key') }, fields));
  assert.equal(r.status, 201, r.text);
  return r.json;
}

// One keep-alive connection per worker: {pid: agent}, for requests that
// must reach a given worker.
async function pinnedAgents() {
  const agents = new Map();
  for (let i = 0; i < 200 && agents.size < 2; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const w = await request(d.base, 'GET', '/__test/worker', { agent });
    if (agents.has(w.json.pid)) agent.destroy();
    else agents.set(w.json.pid, agent);
  }
  assert.equal(agents.size, 2, 'reached both workers');
  return agents;
}
const destroyAll = (agents) => { for (const a of agents.values()) a.destroy(); };

// GET /v1/models on `agent` (checked to be still on worker `pid`).
async function modelsOn(pid, agent, key) {
  const w = await request(d.base, 'GET', '/__test/worker', { agent });
  assert.equal(w.json.pid, pid, 'the connection stayed on its worker');
  return request(d.base, 'GET', '/v1/models', { agent, headers: bearer(key) });
}

const chatAs = (key, body, opts = {}) => g.chat(d, body, Object.assign({ headers: bearer(key) }, opts));
const imageJob = (key, prompt) => chatAs(key, { model: 'sora-image', messages: g.user(prompt) });
const keyInfo = async (id) => (await admin('GET', `/api/keys/${id}`)).json;

// A streamed chat request held open until abort(); resolves `first`
// once the answer's headers (and first chunk) came.
function openStream(key, body) {
  let req;
  const first = new Promise((resolve, reject) => {
    req = http.request(new URL('/v1/chat/completions', d.base), {
      method: 'POST', agent: false,
      headers: Object.assign({ 'Content-Type': 'application/json' }, bearer(key)),
    }, (res) => {
      res.once('data', () => resolve(res));
      res.on('error', () => {});
    });
    req.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
    req.end(JSON.stringify(Object.assign({ stream: true }, body)));
  });
  return { first, abort: () => req.destroy() };
}

test('a new key is shown once and stored only as its MAC', async () => {
  const k = await newKey({ rpm: 50, concurrency: 3, image_quota: 10, video_quota: 0, quota_period: 'month',
    expires_at: 4102444800, models: ['sora-video-10s', 'sora-image'], token_group: 'blue', enabled: true });
  assert.match(k.key, /^sk-[0-9a-f]{48}$/);
  assert.equal(k.key_hint, `sk-${k.key.slice(3, 7)}...${k.key.slice(-4)}`);
  assert.equal(k.object, 'api_key');
  assert.equal(k.rpm, 50);
  assert.equal(k.concurrency, 3);
  assert.equal(k.image_quota, 10);
  assert.equal(k.video_quota, 0);
  assert.equal(k.quota_period, 'month');
  assert.equal(k.expires_at, 4102444800);
  assert.deepEqual(k.models, ['sora-image', 'sora-video-10s']);   // table order
  assert.equal(k.token_group, 'blue');

  const one = await admin('GET', `/api/keys/${k.id}`);
  assert.equal(one.status, 200);
  assert.equal(one.json.key, undefined);
  assert.ok(!one.text.includes(k.key));
  assert.deepEqual(Object.keys(one.json.usage).sort(), ['failures', 'images', 'requests', 'video_seconds', 'videos']);
  const all = await admin('GET', '/api/keys');
  assert.ok(!all.text.includes(k.key));
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: bearer(k.key) })).status, 200);

  // The database (and its WAL) holds neither the key nor its bare hash.
  const sha = crypto.createHash('sha256').update(k.key).digest('hex');
  const mac = d.sqlite(`SELECT key_mac FROM api_keys WHERE id = ${k.id}`);
  assert.match(mac, /^hmac-sha256:[0-9a-f]{64}$/);
  assert.notEqual(mac.slice(12), sha);
  for (const f of ['sora2api.db', 'sora2api.db-wal']) {
    const file = path.join(d.dir, 'data', f);
    if (!fs.existsSync(file)) continue;
    const bytes = fs.readFileSync(file);
    assert.equal(bytes.indexOf(k.key), -1, `${f} does not contain the key`);
    assert.equal(bytes.indexOf(k.key.slice(3)), -1, `${f} does not contain the key's digits`);
    assert.equal(bytes.indexOf(sha), -1, `${f} does not contain the key's SHA-256`);
  }
  assert.ok(!d.log().includes(k.key), 'the log does not contain the key');
});

test('the admin API checks key fields and answers 404 for unknown keys', async () => {
  const bad = [
    [{}, /name is required/],
    [{ name: '' }, /name must be/],
    [{ name: 'x', rpm: 0 }, /rpm must be an integer from 1/],
    [{ name: 'x', concurrency: 'two' }, /concurrency must be/],
    [{ name: 'x', image_quota: -1 }, /image_quota must be an integer from 0/],
    [{ name: 'x', quota_period: 'week' }, /quota_period must be/],
    [{ name: 'x', expires_at: 'tomorrow' }, /expires_at must be/],
    [{ name: 'x', models: [] }, /models must be a non-empty array/],
    [{ name: 'x', models: ['gpt-4'] }, /unknown model "gpt-4"/],
    [{ name: 'x', token_group: 'a b' }, /token_group must be/],
    [{ name: 'x', enabled: 1 }, /enabled must be a boolean/],
    [{ name: 'x', rmp: 10 }, /unknown field "rmp"/],
  ];
  for (const [body, re] of bad) {
    const r = await admin('POST', '/api/keys', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.match(r.json.detail, re);
  }
  for (const [m, p] of [['GET', '/api/keys/999999'], ['PUT', '/api/keys/999999'], ['DELETE', '/api/keys/999999'],
    ['GET', '/api/keys/999999/usage']]) {
    const r = await admin(m, p, m === 'PUT' ? { rpm: 5 } : undefined);
    assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
    assert.deepEqual(r.json, { detail: 'API key not found' });
  }
  assert.equal((await request(d.base, 'GET', '/api/keys')).status, 401);
  // A key object echoed back (read-only fields) is a valid update.
  const k = await newKey({ rpm: 7 });
  const echo = Object.assign({}, await keyInfo(k.id), { rpm: 8 });
  const r = await admin('PUT', `/api/keys/${k.id}`, echo);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.rpm, 8);
  assert.equal(r.json.name, k.name);
});

test('rpm is exact across workers, with the x-ratelimit headers on every answer', async () => {
  const k = await newKey({ rpm: 10 });
  const agents = await pinnedAgents();
  const [[pa, a], [pb, b]] = [...agents.entries()];
  try {
    // 6 on one worker, then 10 on the other: only 4 left there.
    for (let i = 0; i < 6; i++) {
      const r = await modelsOn(pa, a, k.key);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-ratelimit-limit-requests'], '10');
      assert.equal(r.headers['x-ratelimit-remaining-requests'], String(9 - i));
      assert.match(r.headers['x-ratelimit-reset-requests'], /^(\d+s|\d+ms)$/);
    }
    const codes = [];
    for (let i = 0; i < 10; i++) {
      const r = await modelsOn(pb, b, k.key);
      codes.push(r.status);
      assert.equal(r.headers['x-ratelimit-limit-requests'], '10');
      if (r.status === 429) {
        const e = g.assertHttpError(r, 429, 'rate_limit_exceeded', 'requests');
        assert.match(e.message, /limit 10/);
        assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
        const ra = Number(r.headers['retry-after']);
        assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After ${r.headers['retry-after']}`);
      }
    }
    assert.deepEqual(codes, [200, 200, 200, 200, 429, 429, 429, 429, 429, 429]);
  } finally {
    destroyAll(agents);
  }

  // 40 at once on fresh connections (both workers): exactly 10 pass.
  const k2 = await newKey({ rpm: 10 });
  const all = await Promise.all(Array.from({ length: 40 }, () =>
    request(d.base, 'GET', '/v1/models', { headers: bearer(k2.key) })));
  assert.equal(all.filter((r) => r.status === 200).length, 10);
  assert.equal(all.filter((r) => r.status === 429).length, 30);
  assert.deepEqual(all.filter((r) => r.status === 200).map((r) => Number(r.headers['x-ratelimit-remaining-requests'])).sort((x, y) => x - y),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const r of all) assert.equal(r.headers['x-ratelimit-limit-requests'], '10');

  // Any answer to the key carries them: a 404 too.
  const k3 = await newKey({ rpm: 3 });
  const nf = await request(d.base, 'GET', '/v1/nothing', { headers: bearer(k3.key) });
  assert.equal(nf.status, 404);
  assert.equal(nf.headers['x-ratelimit-limit-requests'], '3');
  assert.equal(nf.headers['x-ratelimit-remaining-requests'], '2');
  const live = (await keyInfo(k3.id)).live;
  assert.equal(live.window_requests, 1);
  assert.ok(live.window_reset_ms > 0 && live.window_reset_ms <= 60000);
});

test('disabling, expiry and revocation are seen by every worker at once', async () => {
  const k = await newKey({ expires_at: Math.floor(Date.now() / 1000) + 3600 });
  const agents = await pinnedAgents();
  const both = async () => Promise.all([...agents.entries()].map(([pid, a]) => modelsOn(pid, a, k.key)));
  try {
    assert.deepEqual((await both()).map((r) => r.status), [200, 200]);

    let t0 = Date.now();
    let r = await admin('PUT', `/api/keys/${k.id}`, { enabled: false });
    assert.equal(r.status, 200, r.text);
    let rs = await both();
    assert.ok(Date.now() - t0 < 1000, 'within a second');
    assert.deepEqual(rs.map((x) => x.status), [401, 401]);
    for (const x of rs) {
      const e = g.assertHttpError(x, 401, 'invalid_api_key', 'invalid_request_error');
      assert.match(e.message, /disabled/);
    }
    r = await admin('PUT', `/api/keys/${k.id}`, { enabled: true });
    assert.deepEqual((await both()).map((x) => x.status), [200, 200]);

    // Two hours later by the key clock (test hook), it has expired.
    r = await request(d.base, 'GET', '/__test/key-clock?offset=7200');
    assert.equal(r.status, 200, r.text);
    rs = await both();
    assert.deepEqual(rs.map((x) => x.status), [401, 401]);
    assert.match(rs[0].json.error.message, /expired/);
    await request(d.base, 'GET', '/__test/key-clock?offset=0');
    assert.deepEqual((await both()).map((x) => x.status), [200, 200]);

    t0 = Date.now();
    r = await admin('DELETE', `/api/keys/${k.id}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { id: k.id, object: 'api_key.deleted', deleted: true });
    rs = await both();
    assert.ok(Date.now() - t0 < 1000, 'within a second');
    assert.deepEqual(rs.map((x) => x.status), [401, 401]);
    assert.equal((await admin('GET', `/api/keys/${k.id}`)).status, 404);
    assert.ok(!(await admin('GET', '/api/keys')).json.data.some((x) => x.id === k.id));
    assert.notEqual(d.sqlite(`SELECT deleted_at FROM api_keys WHERE id = ${k.id}`), '');
  } finally {
    await request(d.base, 'GET', '/__test/key-clock?offset=0');
    destroyAll(agents);
  }
});

test('the model allow-list: 403 model_not_found for another model', async () => {
  const k = await newKey({ models: ['sora-image'] });
  let r = await chatAs(k.key, { model: 'sora-video-10s', messages: g.user(tag('a wave')) });
  const e = g.assertHttpError(r, 403, 'model_not_found', 'invalid_request_error');
  assert.equal(e.param, 'model');
  assert.match(e.message, /sora-video-10s/);
  r = await request(d.base, 'POST', '/v1/videos', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, bearer(k.key)),
    body: JSON.stringify({ model: 'sora-2', prompt: tag('a wave') }),
  });
  g.assertHttpError(r, 403, 'model_not_found');
  r = await request(d.base, 'POST', '/v1/images/generations', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, bearer(k.key)),
    body: JSON.stringify({ model: 'sora-image', prompt: tag('a shell') }), timeout: 30000,
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.data.length, 1);
  // Requests reach the master's usage rows within a second.
  const want = { requests: 3, images: 1, videos: 0, video_seconds: 0, failures: 0 };
  await waitFor(async () => JSON.stringify((await keyInfo(k.id)).usage) === JSON.stringify(want),
    { what: 'the usage of the key' });
});

test('GET /v1/models lists only the models a key may use, on every worker', async () => {
  const all = (await request(d.base, 'GET', '/v1/models', { headers: AUTH })).json.data.map((m) => m.id);
  assert.ok(all.length > 3);
  const k = await newKey({ models: ['sora-video-10s', 'sora-image'] });
  const k2 = await newKey({ models: ['sora-image'] });
  const free = await newKey({});
  const agents = await pinnedAgents();
  try {
    for (const [pid, agent] of agents) {
      // Twice each: the second answer comes from the worker's cache.
      for (let i = 0; i < 2; i++) {
        let r = await modelsOn(pid, agent, k.key);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'list');
        assert.deepEqual(r.json.data.map((m) => m.id), all.filter((id) => id === 'sora-image' || id === 'sora-video-10s'));
        assert.deepEqual(Object.keys(r.json.data[0]).sort(), ['created', 'id', 'object', 'owned_by']);
        r = await modelsOn(pid, agent, k2.key);
        assert.deepEqual(r.json.data.map((m) => m.id), ['sora-image']);
        r = await modelsOn(pid, agent, free.key);
        assert.deepEqual(r.json.data.map((m) => m.id), all);
      }
    }
  } finally {
    destroyAll(agents);
  }
  // One model: allowed, not allowed (404 as for an unknown id), unknown.
  let r = await request(d.base, 'GET', '/v1/models/sora-image', { headers: bearer(k2.key) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, 'sora-image');
  r = await request(d.base, 'GET', '/v1/models/sora-video-10s', { headers: bearer(k2.key) });
  const e = g.assertHttpError(r, 404, 'model_not_found', 'invalid_request_error');
  assert.equal(e.param, 'model');
  assert.match(e.message, /do not have access/);
  g.assertHttpError(await request(d.base, 'GET', '/v1/models/gpt-4', { headers: bearer(k2.key) }), 404, 'model_not_found');
  assert.equal((await request(d.base, 'GET', '/v1/models/sora-video-10s', { headers: bearer(free.key) })).status, 200);
  // A changed list shows at once.
  assert.equal((await admin('PUT', `/api/keys/${k2.id}`, { models: ['sora-video-10s'] })).status, 200);
  await waitFor(async () => JSON.stringify((await request(d.base, 'GET', '/v1/models', { headers: bearer(k2.key) }))
    .json.data.map((m) => m.id)) === '["sora-video-10s"]', { what: 'the new list' });
});

test('concurrency: stalled jobs hold their slots until their client leaves', async () => {
  const k = await newKey({ concurrency: 2, rpm: 100 });
  const body = () => ({ model: 'sora-video-10s', messages: g.user(tag('a slow river #stall')) });
  const s1 = openStream(k.key, body());
  const s2 = openStream(k.key, body());
  const [r1, r2] = await Promise.all([s1.first, s2.first]);
  assert.equal(r1.statusCode, 200);
  assert.equal(r2.statusCode, 200);
  // A stream's head carries the window too.
  assert.equal(r1.headers['x-ratelimit-limit-requests'], '100');
  assert.match(r1.headers['x-ratelimit-remaining-requests'], /^9[89]$/);
  assert.equal((await keyInfo(k.id)).live.running, 2);
  let r = await chatAs(k.key, body());
  g.assertHttpError(r, 429, 'concurrency_limit_exceeded', 'requests');
  assert.equal(r.headers['retry-after'], '1');
  // Images count too: one job, one slot.
  r = await request(d.base, 'POST', '/v1/images/generations', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, bearer(k.key)),
    body: JSON.stringify({ model: 'sora-image', prompt: tag('a reed') }),
  });
  g.assertHttpError(r, 429, 'concurrency_limit_exceeded');

  s1.abort();
  await waitFor(async () => (await keyInfo(k.id)).live.running === 1, { what: 'one slot back' });
  const s3 = openStream(k.key, body());
  assert.equal((await s3.first).statusCode, 200);
  g.assertHttpError(await chatAs(k.key, body()), 429, 'concurrency_limit_exceeded');
  s2.abort();
  s3.abort();
  await waitFor(async () => (await keyInfo(k.id)).live.running === 0, { what: 'every slot back' });
  const info = await keyInfo(k.id);
  // Cancelled jobs are neither completions nor failures.
  assert.equal(info.usage.videos, 0);
  assert.equal(info.usage.failures, 0);
});

test('concurrency: a dead worker\'s jobs give their slots back', async () => {
  const k = await newKey({ concurrency: 1 });
  const agents = await pinnedAgents();
  const [[pid, agent]] = [...agents.entries()];
  // Sora never answers the submit: the job holds its slot, no task yet.
  await ctx.fake.arm({ route: 'POST /backend/nf/create', hang: true, times: -1 });
  try {
    const w = await request(d.base, 'GET', '/__test/worker', { agent });
    assert.equal(w.json.pid, pid);
    const held = request(d.base, 'POST', '/v1/chat/completions', {
      agent, timeout: 30000,
      headers: Object.assign({ 'Content-Type': 'application/json' }, bearer(k.key)),
      body: JSON.stringify({ model: 'sora-video-10s', messages: g.user(tag('a harbour')) }),
    }).catch((e) => e);
    await waitFor(async () => (await keyInfo(k.id)).live.running === 1, { what: 'the job running' });
    g.assertHttpError(await chatAs(k.key, { model: 'sora-image', messages: g.user(tag('x')) }), 429,
      'concurrency_limit_exceeded');
    process.kill(pid, 'SIGKILL');
    assert.ok((await held) instanceof Error, 'the held request lost its worker');
    await waitFor(async () => (await keyInfo(k.id)).live.running === 0, { what: 'the slot released by the master' });
    assert.match(d.log(), new RegExp(`1 API key leases of pid ${pid} released`));
  } finally {
    await g.disarm(ctx.fake);
    destroyAll(agents);
  }
  await waitFor(async () => d.workers().length === 2, { what: 'the worker respawned' });
  const r = await imageJob(k.key, tag('a gull'));
  assert.equal(r.status, 200, r.text);
  assert.equal((await keyInfo(k.id)).live.running, 0);
});

test('quotas: completed jobs count, failed ones do not, and a new day starts afresh', async () => {
  const k = await newKey({ image_quota: 2, quota_period: 'day' });
  const day = (t) => new Date(t * 1000).toISOString().slice(0, 10);
  const now = Math.floor(Date.now() / 1000);
  const today = day(now);
  try {
    let r = await imageJob(k.key, tag('a broken vase #fail'));
    g.assertHttpError(r, 502, 'generation_failed');
    assert.equal((await keyInfo(k.id)).live.images_used, 0);
    for (let i = 0; i < 2; i++) {
      r = await imageJob(k.key, tag('a vase'));
      assert.equal(g.parseCompletion(r).type, 'image');
    }
    assert.equal((await keyInfo(k.id)).live.images_used, 2);
    r = await imageJob(k.key, tag('a third vase'));
    const e = g.assertHttpError(r, 429, 'quota_exceeded', 'insufficient_quota');
    assert.match(e.message, /image quota is used up: 2 per day/);
    const ra = Number(r.headers['retry-after']);
    const midnight = now - (now % 86400) + 86400;
    assert.ok(Math.abs(ra - (midnight - now)) <= 5, `Retry-After ${ra} is the time to midnight`);
    // Videos have no quota on this key.
    assert.equal((await chatAs(k.key, { model: 'sora-video-10s', messages: g.user(tag('a boat')) })).status, 200);

    // The next UTC day, by the key clock.
    const offset = midnight - now + 60;
    await request(d.base, 'GET', `/__test/key-clock?offset=${offset}`);
    for (let i = 0; i < 2; i++) {
      r = await imageJob(k.key, tag('a new vase'));
      assert.equal(g.parseCompletion(r).type, 'image');
    }
    g.assertHttpError(await imageJob(k.key, tag('one more')), 429, 'quota_exceeded');
    const tomorrow = day(now + offset);

    // Usage rows equal the jobs run (requests reach the master within a second).
    const want = [
      { day: today, model: 'sora-image', requests: 4, images: 2, videos: 0, video_seconds: 0, failures: 1 },
      { day: today, model: 'sora-video-10s', requests: 1, images: 0, videos: 1, video_seconds: 10, failures: 0 },
      { day: tomorrow, model: 'sora-image', requests: 3, images: 2, videos: 0, video_seconds: 0, failures: 0 },
    ];
    await waitFor(async () => {
      const u = await admin('GET', `/api/keys/${k.id}/usage`);
      return JSON.stringify(u.json.data) === JSON.stringify(want);
    }, { what: 'the usage rows' });
    let u = await admin('GET', `/api/keys/${k.id}/usage`);
    assert.deepEqual(u.json.total, { requests: 8, images: 4, videos: 1, video_seconds: 10, failures: 1 });
    assert.equal(u.json.object, 'list');
    assert.equal(u.json.key_id, k.id);
    u = await admin('GET', `/api/keys/${k.id}/usage?from=${tomorrow}&to=${tomorrow}`);
    assert.deepEqual(u.json.data, [want[2]]);
    assert.equal(u.json.from, tomorrow);
    const csv = await admin('GET', `/api/keys/${k.id}/usage?format=csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.headers['content-type'], /^text\/csv/);
    assert.match(csv.headers['content-disposition'], new RegExp(`api-key-${k.id}-usage\\.csv`));
    assert.equal(csv.text, 'day,model,requests,images,videos,video_seconds,failures\n'
      + want.map((w) => `${w.day},${w.model},${w.requests},${w.images},${w.videos},${w.video_seconds},${w.failures}`).join('\n') + '\n');
    assert.equal((await admin('GET', `/api/keys/${k.id}/usage?from=yesterday`)).status, 400);
    assert.deepEqual((await keyInfo(k.id)).usage, { requests: 8, images: 4, videos: 1, video_seconds: 10, failures: 1 });
  } finally {
    await request(d.base, 'GET', '/__test/key-clock?offset=0');
  }
});

test('quotas are exact under concurrency: running jobs reserve their unit', async () => {
  const k = await newKey({ image_quota: 3 });
  const all = await Promise.all(Array.from({ length: 8 }, (_, i) => imageJob(k.key, tag(`a pebble ${i}`))));
  assert.equal(all.filter((r) => r.status === 200).length, 3);
  for (const r of all.filter((x) => x.status !== 200)) g.assertHttpError(r, 429, 'quota_exceeded');
  const info = await keyInfo(k.id);
  assert.equal(info.live.images_used, 3);
  assert.equal(info.live.running, 0);
});

test('token groups: a bound key runs only on its group\'s tokens', async () => {
  const t = await g.addToken(ctx, { group: 'gold', image_concurrency: 0, video_concurrency: 0 },
    { remaining: null, max_concurrent: 0 });
  const listed = await g.tokenById(ctx, t.id);
  assert.equal(listed.group, 'gold');
  const gold = await newKey({ token_group: 'gold' });
  const none = await newKey({ token_group: 'nobody-has-this' });
  for (let i = 0; i < 3; i++) {
    const prompt = tag('a gold leaf');
    const r = await imageJob(gold.key, prompt);
    assert.equal(g.parseCompletion(r).type, 'image');
    const tasks = (await admin('GET', '/api/tasks?limit=50')).json.tasks;
    const row = tasks.find((x) => x.prompt === prompt);
    assert.equal(row.token_id, t.id, 'the gold token ran it');
  }
  // No token has the group: refused at once, naming no other token.
  const r = await imageJob(none.key, tag('nowhere'));
  const e = g.assertHttpError(r, 503, 'no_available_token');
  assert.match(e.message, /no image token is available: the pool has no usable token/);
  // A group nobody uses again: the token serves anyone once cleared.
  assert.equal((await request(d.base, 'PUT', `/api/tokens/${t.id}`, {
    headers: Object.assign({ 'Content-Type': 'application/json' }, H), body: JSON.stringify({ group: 'a b' }),
  })).status, 400);
  const u = await request(d.base, 'PUT', `/api/tokens/${t.id}`, {
    headers: Object.assign({ 'Content-Type': 'application/json' }, H), body: JSON.stringify({ group: '' }),
  });
  assert.equal(u.status, 200, u.text);
  assert.equal((await g.tokenById(ctx, t.id)).group, null);
});

test('quotas survive a restart (rebuilt from the usage rows)', async () => {
  const k = await newKey({ video_quota: 1 });
  assert.equal((await chatAs(k.key, { model: 'sora-video-10s', messages: g.user(tag('a kite')) })).status, 200);
  g.assertHttpError(await chatAs(k.key, { model: 'sora-video-10s', messages: g.user(tag('a kite')) }), 429,
    'quota_exceeded');
  assert.equal((await d.stop()).code, 0);
  await d.start();
  H = await require('./lib/daemon').adminLogin(d);
  ctx.H = H;
  const r = await chatAs(k.key, { model: 'sora-video-10s', messages: g.user(tag('a kite again')) });
  const e = g.assertHttpError(r, 429, 'quota_exceeded');
  assert.match(e.message, /video quota is used up: 1 in all/);
  assert.equal(r.headers['retry-after'], undefined, 'a total quota never resets');
  assert.equal((await keyInfo(k.id)).live.videos_used, 1);
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: bearer(k.key) })).status, 200);
});

test('/metrics: per-key requests, jobs and throttled answers, labelled by key id', async () => {
  const k = await newKey({ rpm: 5 });
  assert.equal(g.parseCompletion(await imageJob(k.key, tag('a metric'))).type, 'image');
  const codes = [];
  for (let i = 0; i < 5; i++) codes.push((await request(d.base, 'GET', '/v1/models', { headers: bearer(k.key) })).status);
  assert.deepEqual(codes, [200, 200, 200, 200, 429]);
  const want = {
    sora2api_api_key_requests_total: 6,
    sora2api_api_key_throttled_total: 1,
    sora2api_api_key_jobs_total: 1,
    sora2api_api_key_jobs_running: 0,
  };
  const agents = await pinnedAgents();
  try {
    for (const agent of agents.values()) {
      const m = await request(d.base, 'GET', '/metrics', { agent });
      assert.equal(m.status, 200);
      for (const [name, v] of Object.entries(want)) {
        assert.ok(m.text.includes(`# TYPE ${name} ${name.endsWith('_running') ? 'gauge' : 'counter'}\n`), name);
        assert.ok(m.text.split('\n').includes(`${name}{key="${k.id}"} ${v}`), `${name} of key ${k.id} is ${v}`);
      }
      assert.ok(!m.text.includes(k.name), 'no key names in /metrics');
      assert.ok(!m.text.includes(k.key), 'no keys in /metrics');
    }
  } finally {
    destroyAll(agents);
  }
});

test('the API key of today is key 1; the admin key-change route rekeys it', async () => {
  const list = await admin('GET', '/api/keys');
  assert.equal(list.status, 200, list.text);
  assert.equal(list.json.object, 'list');
  const k1 = list.json.data.find((k) => k.id === 1);
  assert.equal(k1.name, 'default');
  assert.equal(k1.key_hint, null);
  assert.equal(k1.rpm, null);
  assert.equal(k1.enabled, true);
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);

  let r = await admin('POST', '/api/admin/apikey', { new_api_key: 'rotated-key-123' });
  assert.equal(r.status, 200, r.text);
  for (let i = 0; i < 6; i++) {   // new connections: both workers
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 401);
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: bearer('rotated-key-123') })).status, 200);
  }
  assert.match(d.sqlite('SELECT key_mac FROM api_keys WHERE id = 1'), /^hmac-sha256:[0-9a-f]{64}$/);
  assert.equal(d.sqlite('SELECT key_mac FROM api_keys WHERE id = 1'),
    d.sqlite("SELECT value FROM settings WHERE key = 'api_key_sha256'"));
  // (The test that changes key 1 comes last: the others keep han1234.)

  // Key 1 takes limits like any other.
  const rot = bearer('rotated-key-123');
  r = await admin('PUT', '/api/keys/1', { rpm: 100000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.rpm, 100000);
  const m = await request(d.base, 'GET', '/v1/models', { headers: rot });
  assert.equal(m.headers['x-ratelimit-limit-requests'], '100000');
  r = await admin('PUT', '/api/keys/1', { rpm: null });
  assert.equal(r.json.rpm, null);
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: rot })).headers['x-ratelimit-limit-requests'],
    undefined);
  // Another key cannot take key 1's key.
  const k = await newKey({});
  r = await admin('POST', '/api/admin/apikey', { new_api_key: k.key });
  assert.notEqual(r.status, 200, r.text);
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: rot })).status, 200);
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: bearer(k.key) })).status, 200);
});
