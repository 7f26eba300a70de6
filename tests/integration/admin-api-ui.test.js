'use strict';
// The parts of the admin API the web UI leans on: batch add with one
// result per line, in-flight counts in the token list, jobs in the
// statistics, filtered task and log listings, and settings refusals
// that name their field.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { request, waitFor, AUTH } = require('./lib/daemon');
const g = require('./lib/gen');

const json = (o) => JSON.stringify(o);
let ctx;
let d;
let H;

before(async () => {
  ctx = await g.startGenPool();
  ({ d, H } = ctx);
});
after(async () => {
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
  await ctx.fake.close();
});

const api = (method, p, body) => request(d.base, method, p, {
  headers: H, body: body === undefined ? undefined : json(body), timeout: 60000,
});
const byEmail = async () => new Map((await (await api('GET', '/api/tokens?reveal=1')).json).map((t) => [t.email, t]));

test('batch add of access tokens: one result per line, in order, secrets never echoed', async () => {
  const [a, b, c] = await ctx.fake.account({ count: 3, email: 'batch-at{n}@example.test' });
  const old = await g.addToken(ctx, {}, { email: 'batch-at-old@example.test' });
  const expired = await ctx.fake.account({ email: 'batch-at-expired@example.test', expired: true });
  const r = await api('POST', '/api/tokens/batch', {
    kind: 'at',
    tokens: [a.access_token, 'not-a-jwt', old.at, b.access_token, expired.access_token, '', c.access_token, a.access_token],
    remark: 'from a batch', video_concurrency: 2, image_enabled: false,
  });
  assert.equal(r.status, 200, r.text);
  for (const t of [a, b, c, old, expired]) {
    assert.ok(!r.text.includes(t.access_token || t.at), 'no access token in the answer');
  }
  const ids = await byEmail();
  const id = (e) => ids.get(e).id;
  assert.deepEqual(r.json, {
    success: false,
    message: 'Batch completed: 3 added, 2 duplicates, 3 failed',
    added: 3, duplicates: 2, failed: 3,
    results: [
      { line: 1, status: 'added', token_id: id(a.email), email: a.email },
      { line: 2, status: 'failed', detail: 'Invalid token: not a JWT access token' },
      { line: 3, status: 'duplicate', token_id: old.id, email: 'batch-at-old@example.test', detail: 'Token already exists' },
      { line: 4, status: 'added', token_id: id(b.email), email: b.email },
      { line: 5, status: 'failed', email: undefined, detail: 'Token expired: the access token\'s exp has passed' },
      { line: 6, status: 'failed', detail: 'empty line' },
      { line: 7, status: 'added', token_id: id(c.email), email: c.email },
      { line: 8, status: 'duplicate', detail: 'Same token as line 1' },
    ].map((x) => JSON.parse(JSON.stringify(x))),
  });
  for (const acc of [a, b, c]) {
    const t = ids.get(acc.email);
    assert.equal(t.token, acc.access_token);
    assert.equal(t.remark, 'from a batch');
    assert.equal(t.video_concurrency, 2);
    assert.equal(t.image_enabled, false);
    assert.equal(t.state, 'active');
  }
  assert.equal(ids.get(old.acc.email).remark, null, 'a duplicate is left alone');
});

test('batch add of session and refresh tokens converts each line first; the rotated RT is kept', async () => {
  const [s1, s2] = await ctx.fake.account({ count: 2, email: 'batch-st{n}@example.test', session_token: 'st-batch-{n}' });
  const st = await api('POST', '/api/tokens/batch', { kind: 'st', tokens: [s1.session_token, 'st-unknown', s2.session_token] });
  assert.equal(st.status, 200, st.text);
  assert.equal(st.json.message, 'Batch completed: 2 added, 0 duplicates, 1 failed');
  assert.deepEqual(st.json.results.map((x) => [x.line, x.status, x.email]),
    [[1, 'added', s1.email], [2, 'failed', undefined], [3, 'added', s2.email]]);
  assert.match(st.json.results[1].detail, /^Failed to convert ST to AT: /);
  let ids = await byEmail();
  assert.equal(ids.get(s1.email).st, s1.session_token);
  assert.match(s1.session_token, /^st-batch-\d+$/);
  assert.equal(ids.get(s2.email).rt, null);

  const r1 = await ctx.fake.account({ email: 'batch-rt@example.test', refresh_token: 'rt-batch-first' });
  const rt = await api('POST', '/api/tokens/batch', { kind: 'rt', tokens: [r1.refresh_token, 'rt-nobody'] });
  assert.equal(rt.status, 200, rt.text);
  assert.deepEqual(rt.json.results.map((x) => [x.line, x.status]), [[1, 'added'], [2, 'failed']]);
  assert.match(rt.json.results[1].detail, /^Failed to convert RT to AT: /);
  ids = await byEmail();
  const stored = ids.get(r1.email);
  assert.ok(stored.rt && stored.rt !== 'rt-batch-first', `the rotated refresh token is stored (${stored.rt})`);
  assert.equal(stored.st, null);
  assert.ok(!rt.text.includes('rt-batch-first') && !rt.text.includes(stored.rt));
});

test('batch add refuses a malformed request as a whole', async () => {
  const cases = [
    [{ kind: 'xt', tokens: ['a'] }, 'kind must be at, st or rt'],
    [{ kind: 'at', tokens: [] }, 'tokens must be an array of 1 to 1000 strings'],
    [{ kind: 'at', tokens: Array(1001).fill('x') }, 'tokens must be an array of 1 to 1000 strings'],
    [{ kind: 'at', tokens: ['a', 7] }, 'tokens[1] must be a string of at most 8000 bytes'],
    [{ kind: 'at', tokens: ['a'], video_concurrency: 'two' }, 'video_concurrency must be an integer from -1 to 10000 (-1 or 0: unlimited)'],
  ];
  for (const [body, detail] of cases) {
    const r = await api('POST', '/api/tokens/batch', body);
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.json, { detail });
  }
  const anon = await request(d.base, 'POST', '/api/tokens/batch', { body: json({ kind: 'at', tokens: ['a'] }) });
  assert.equal(anon.status, 401);
});

// A streamed video job that stalls at Sora until the connection drops.
function stalledJob(prompt) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${d.base}/v1/chat/completions`, { method: 'POST',
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH) }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
        if (text.includes('Generation task submitted')) resolve({ leave: () => req.destroy() });
      });
      res.on('end', () => reject(new Error(`the stream ended: ${text}`)));
    });
    req.on('error', () => {});
    req.end(json({ model: 'sora-video-10s', stream: true, messages: g.user(prompt) }));
  });
}

test('the token list shows jobs in flight and the statistics count running jobs', async () => {
  const busy = await g.addToken(ctx, { remark: 'busy' }, { remaining: null, max_concurrent: 0 });
  // Only this token takes videos while the test runs.
  const others = (await (await api('GET', '/api/tokens')).json).filter((t) => t.id !== busy.id && t.state === 'active');
  for (const t of others) assert.equal((await api('POST', `/api/tokens/${t.id}/disable`)).status, 200);
  try {
    const idle = await api('GET', '/api/tokens');
    assert.ok(idle.json.every((t) => t.image_inflight === 0 && t.video_inflight === 0), 'nothing in flight yet');
    const s0 = (await api('GET', '/api/stats')).json;
    assert.deepEqual(s0.jobs, { queued: 0, running: 0 });
    const jobs = [await stalledJob('#stall inflight one'), await stalledJob('#stall inflight two')];
    const row = await waitFor(async () => {
      const t = (await (await api('GET', '/api/tokens')).json).find((x) => x.id === busy.id);
      return t.video_inflight === 2 ? t : null;
    }, { what: 'two videos in flight' });
    assert.equal(row.image_inflight, 0);
    const rest = (await (await api('GET', '/api/tokens')).json).filter((t) => t.id !== busy.id);
    assert.ok(rest.every((t) => t.video_inflight === 0 && t.image_inflight === 0));
    await waitFor(async () => {
      const s = (await api('GET', '/api/stats')).json;
      return s.jobs.running === 2 && s.jobs.queued === 0;
    }, { what: 'two running jobs in the statistics' });
    for (const j of jobs) j.leave();
    await waitFor(async () => {
      const t = (await (await api('GET', '/api/tokens')).json).find((x) => x.id === busy.id);
      const s = (await api('GET', '/api/stats')).json;
      return t.video_inflight === 0 && s.jobs.running === 0;
    }, { what: 'nothing in flight after the clients left' });
  } finally {
    for (const t of others) await api('POST', `/api/tokens/${t.id}/enable`);
  }
});

test('task and log listings filter by status, model, token, time, operation and page', async () => {
  const one = await g.addToken(ctx, {}, { email: 'filter-one@example.test' });
  const two = await g.addToken(ctx, {}, { email: 'filter-two@example.test' });
  const tokens = (await (await api('GET', '/api/tokens')).json).filter((t) => ![one.id, two.id].includes(t.id) && t.state === 'active');
  for (const t of tokens) await api('POST', `/api/tokens/${t.id}/disable`);
  const runs = [];
  try {
    await api('POST', `/api/tokens/${two.id}/disable`);
    runs.push(await g.chat(d, { model: 'sora-image', messages: g.user('filter image on one') }));
    runs.push(await g.chat(d, { model: 'sora-image-landscape', messages: g.user('filter landscape on one') }));
    runs.push(await g.chat(d, { model: 'sora-image', messages: g.user('#fail filter failure on one') }));
    await api('POST', `/api/tokens/${two.id}/enable`);
    await api('POST', `/api/tokens/${one.id}/disable`);
    runs.push(await g.chat(d, { model: 'sora-image', messages: g.user('filter image on two') }));
  } finally {
    for (const t of tokens) await api('POST', `/api/tokens/${t.id}/enable`);
    await api('POST', `/api/tokens/${one.id}/enable`);
  }
  assert.deepEqual(runs.map((r) => r.status), [200, 200, 502, 200]);
  const tasks = async (q) => {
    const r = await api('GET', `/api/tasks?${q}`);
    assert.equal(r.status, 200, r.text);
    return r.json.tasks;
  };
  const prompts = (rows) => rows.map((t) => t.prompt).filter((p) => p.includes('filter'));
  assert.deepEqual(prompts(await tasks(`token_id=${one.id}`)),
    ['#fail filter failure on one', 'filter landscape on one', 'filter image on one']);
  assert.deepEqual(prompts(await tasks(`token_id=${one.id}&model=sora-image`)),
    ['#fail filter failure on one', 'filter image on one']);
  const failed = await tasks(`token_id=${one.id}&status=failed`);
  assert.deepEqual(prompts(failed), ['#fail filter failure on one']);
  assert.equal(failed[0].error_code, 'generation_failed');
  assert.equal(typeof failed[0].error_message, 'string');
  const all = await tasks('limit=1000');
  const newest = all[0];
  assert.deepEqual((await tasks(`job_id=${all[2].job_id}`)).map((t) => t.id), [all[2].id]);
  assert.deepEqual((await tasks(`before=${newest.id}&limit=2`)).map((t) => t.id), [all[1].id, all[2].id]);
  const t0 = Math.floor(Date.parse(newest.created_at) / 1000);
  assert.ok((await tasks(`since=${t0}`)).some((t) => t.id === newest.id));
  assert.deepEqual(await tasks(`since=${t0 + 3600}`), []);
  assert.ok(!(await tasks(`until=${t0}`)).some((t) => t.id === newest.id));
  assert.deepEqual(await tasks('model=sora-nothing'), []);

  const logs = async (q) => {
    const r = await api('GET', `/api/logs?${q}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  const mine = await logs(`token_id=${one.id}`);
  assert.deepEqual(mine.map((l) => l.status_code), [502, 200, 200]);
  assert.deepEqual((await logs(`token_id=${one.id}&status=error`)).map((l) => l.status_code), [502]);
  assert.deepEqual((await logs(`token_id=${one.id}&status=ok`)).map((l) => l.status_code), [200, 200]);
  assert.deepEqual((await logs(`token_id=${one.id}&status=502`)).map((l) => l.status_code), [502]);
  assert.deepEqual((await logs(`token_id=${one.id}&model=sora-image-landscape`)).map((l) => l.model), ['sora-image-landscape']);
  assert.equal((await logs(`token_id=${two.id}&operation=generate_image`)).length, 1);
  assert.deepEqual(await logs(`token_id=${two.id}&operation=generate_video`), []);
  for (const q of ['token_id=abc', 'since=-5', 'limit=0', `model=${'m'.repeat(65)}`]) {
    const r = await api('GET', `/api/logs?${q}`);
    assert.equal(r.status, 400, q);
    assert.match(r.json.detail, /must be (a positive integer|at most 64 bytes)$/);
  }
});

test('a refused setting names its field in "param"', async () => {
  const cases = [
    ['/api/admin/config', { error_ban_threshold: 5000 }, 'error_ban_threshold', 'error_ban_threshold must be 0..1000'],
    ['/api/admin/config', { queue_timeout: 'soon' }, 'queue_timeout', 'queue_timeout must be an integer'],
    ['/api/admin/config', { log_level: 'loud' }, 'log_level', /^log_level must be/],
    ['/api/admin/config', { nonsense: 1 }, 'nonsense', 'Unknown setting "nonsense"'],
    ['/api/cache/config', { timeout: 10 }, 'timeout', 'Cache timeout must be between 60 seconds and 24 hours (86400 seconds)'],
    ['/api/cache/base-url', { base_url: 'ftp://x' }, 'base_url', /^Base URL must start with http/],
    ['/api/generation/timeout', { image_timeout: 60, video_timeout: 10 }, 'video_timeout', 'video_timeout must be 60..7200 seconds'],
    ['/api/generation/timeout', { image_timeout: 'x' }, 'image_timeout', /must be integers/],
    ['/api/proxy/config', { proxy_enabled: true, proxy_url: 'gopher://x' }, 'proxy_url', 'proxy_url must be an http, https, socks5 or socks5h URL'],
    ['/api/proxy/config', { proxy_enabled: 'yes' }, 'proxy_enabled', 'proxy_enabled must be a boolean and proxy_url a string'],
    ['/api/proxy/config', { proxy_enabled: true, proxy_url: 5 }, 'proxy_url', 'proxy_enabled must be a boolean and proxy_url a string'],
    ['/api/watermark-free/config', { watermark_free_enabled: true, third_party_url: 'https://x/no-id.mp4' }, 'third_party_url',
      'third_party_url must be an http(s) URL containing {post_id}'],
    ['/api/watermark-free/config', { watermark_free_enabled: false, parse_method: 'magic' }, 'parse_method', 'parse_method must be third_party or custom'],
    ['/api/admin/apikey', { new_api_key: 'short' }, 'new_api_key', /^new_api_key must be 8\.\.256/],
    ['/api/admin/password', { old_password: 'admin', new_password: 'short' }, 'new_password', 'The new password needs at least 8 characters'],
    ['/api/admin/password', { old_password: 'wrong-one', new_password: 'long enough' }, 'old_password', 'Old password is incorrect'],
  ];
  for (const [p, body, param, detail] of cases) {
    const r = await api('POST', p, body);
    assert.equal(r.status, 400, `${p} ${r.text}`);
    assert.equal(r.json.param, param, `${p} ${r.text}`);
    if (detail instanceof RegExp) assert.match(r.json.detail, detail);
    else assert.equal(r.json.detail, detail);
  }
  // Nothing changed, and a good value still goes through.
  const cfg = (await api('GET', '/api/admin/config')).json;
  assert.equal(cfg.error_ban_threshold, 3);
  assert.equal((await api('GET', '/api/cache/config')).json.config.timeout, 600);
  const ok = await api('POST', '/api/generation/timeout', { image_timeout: 120, video_timeout: 600 });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.param, undefined);
});

test('the list and the export gather the pool a page at a time from the master', async () => {
  const accs = await ctx.fake.account({ count: 1200, email: 'paged{n}@example.test' });
  const r = await api('POST', '/api/tokens/import', { tokens: accs.map((a) => ({ email: a.email, access_token: a.access_token })) });
  assert.equal(r.json.added, 1200, r.text.slice(0, 200));
  const list = (await api('GET', '/api/tokens')).json;
  const ids = list.map((t) => t.id);
  assert.ok(list.length >= 1200);
  assert.equal(new Set(ids).size, ids.length, 'no row twice');
  assert.ok(ids.every((id, i) => i === 0 || ids[i - 1] > id), 'newest first across pages');
  assert.equal(list.filter((t) => /^paged\d+@/.test(t.email)).length, 1200);
  const exp = await api('GET', '/api/tokens/export');
  assert.equal(exp.status, 200);
  assert.equal(exp.json.length, list.length);
  const mine = new Map(accs.map((a) => [a.email, a.access_token]));
  assert.ok(exp.json.filter((x) => mine.has(x.email)).every((x) => x.access_token === mine.get(x.email)));
});

test('GET /api/models lists the model table for key allow-lists; it needs a session', async () => {
  const r = await api('GET', '/api/models');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'list');
  const ids = r.json.data.map((m) => m.id);
  // The same ids, in the same order, as /v1/models (which needs an API key).
  const v1 = await request(d.base, 'GET', '/v1/models', { headers: AUTH });
  assert.deepEqual(ids, v1.json.data.map((m) => m.id));
  assert.deepEqual(r.json.data[0], { id: 'sora-image', kind: 'image', description: 'Image generation - 360x360' });
  assert.deepEqual(r.json.data.find((m) => m.id === 'sora-video-portrait-15s'),
    { id: 'sora-video-portrait-15s', kind: 'video', description: 'Video generation - portrait, 15 seconds' });
  assert.deepEqual([...new Set(r.json.data.map((m) => m.kind))], ['image', 'video']);
  // Every id is one a key's allow-list takes.
  const k = await api('POST', '/api/keys', { name: 'all models', models: ids });
  assert.equal(k.status, 201, k.text);
  assert.deepEqual(k.json.models, ids);
  assert.equal((await api('DELETE', `/api/keys/${k.json.id}`)).status, 200);
  // An admin route: no session, no list; an API key is not a session.
  assert.equal((await request(d.base, 'GET', '/api/models')).status, 401);
  assert.equal((await request(d.base, 'GET', '/api/models', { headers: AUTH })).status, 401);
  assert.equal((await api('POST', '/api/models', {})).status, 405);
});
