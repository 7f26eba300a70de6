'use strict';
// Generation failures and finishing steps (docs/generation.md): content
// policy, failed and refused tasks, token trouble at submit and while
// polling, uploads, an empty pool, the file cache, watermark-free
// publishing, and the generation timeout.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { request, waitFor, adminLogin } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { S, json, user } = g;
let ctx;
let fake;
let d;
let png;
let nonce = 0;
const tag = (s) => `${s} [f${++nonce}]`;
const VIOLATION = 'This content may violate our guardrails concerning similarity to third-party content.';

before(async () => {
  ctx = await g.startGenPool({ workers: 2 });
  ({ fake, d } = ctx);
  png = await g.pngBytes(fake);
});
after(() => stopPool(ctx));

// A clean slate: no token, no arm, default settings this file changes.
async function fresh(tokens = 1, tokenOpts = {}, accountOpts = {}) {
  // Whatever the last test did, every lease came back.
  await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases === 0, { what: 'no lease left' });
  await g.disarm(fake);
  await g.emptyPool(ctx);
  const out = [];
  for (let i = 0; i < tokens; i++) out.push(await g.addToken(ctx, tokenOpts, Object.assign({ remaining: null }, accountOpts)));
  return out;
}

const admin = (p, body) => request(d.base, 'POST', p, { headers: ctx.H, body: json(body) });

async function stream(body) {
  const since = await g.lastSeq(fake);
  const r = await g.chat(d, Object.assign({}, body, { stream: true }));
  const s = g.parseStream(r);
  return Object.assign(s, { calls: await g.genCalls(fake, since) });
}

async function plain(body) {
  const since = await g.lastSeq(fake);
  const r = await g.chat(d, Object.assign({}, body, { stream: false }));
  return Object.assign(r, { calls: await g.genCalls(fake, since) });
}

// A stream that failed: its last chunk is the error result (the
// contract's format, with data.code). `type` is only in the HTTP errors
// of non-streaming requests.
function streamError(s, code) {
  assert.ok(s.error, `an error result; got ${JSON.stringify(s.content)}`);
  assert.equal(s.error.code, code, JSON.stringify(s.content));
  assert.deepEqual(s.content, { type: 'error', error: s.error.message, data: { error: s.error.message, code } });
  return s.error;
}

const taskIdOf = (s) => s.rcs.find((x) => x.message === 'Generation task submitted').details.task_id;
const creates = (calls) => g.byPath(calls, 'POST', '/backend/nf/create');

test('a content-policy video: an error chunk, an error result, content_filter without streaming', async () => {
  const [t] = await fresh();
  const s = await stream({ model: 'sora-video-10s', messages: user(tag('#violate a famous mouse')) });
  const why = `Content policy violation: ${VIOLATION}`;
  g.assertShape(s.rcs, [S.started, S.submitted, S.video(30), S.video(70), S.violation(VIOLATION)]);
  assert.deepEqual(s.content, { type: 'error', error: why, data: { error: why, code: 'content_policy_violation' } });
  const r = await plain({ model: 'sora-video-landscape-10s', messages: user(tag('#violate again')) });
  const content = g.parseCompletion(r, 'content_filter');
  assert.deepEqual(content, { type: 'error', error: why, data: { error: why, code: 'content_policy_violation' } });
  // A refusal counts as neither a video nor an error.
  await waitFor(() => d.sqlite(`SELECT count(*) FROM tasks WHERE status = 'failed' AND token_id = ${t.id}`) === '2',
    { what: 'two failed task rows' });
  assert.match(d.sqlite(`SELECT error_message FROM tasks WHERE token_id = ${t.id} LIMIT 1`), /^Content policy violation: /);
  await waitFor(() => d.sqlite(`SELECT count(*) FROM request_logs WHERE token_id = ${t.id} AND status_code = 400`) === '2',
    { what: 'two request logs with 400' });
  const tok = await g.tokenById(ctx, t.id);
  assert.equal(tok.video_count, 0);
  assert.equal(tok.error_count, 0);
  assert.equal(tok.state, 'active');
});

test('a failed image fails at once with generation_failed', async () => {
  const [t] = await fresh();
  let t0 = Date.now();
  const s = await stream({ model: 'sora-image', messages: user(tag('#fail a broken image')) });
  assert.ok(Date.now() - t0 < 3000, `failed after ${Date.now() - t0} ms`);
  g.assertShape(s.rcs, [S.started, S.submitted, S.image(50)]);
  const e = streamError(s, 'generation_failed');
  assert.match(e.message, /Image generation failed due to an internal error\./);
  t0 = Date.now();
  const r = await plain({ model: 'sora-image-landscape', messages: user(tag('#fail once more')) });
  assert.ok(Date.now() - t0 < 3000);
  g.assertHttpError(r, 502, 'generation_failed', 'upstream_error');
  assert.match(r.json.error.message, /Image generation failed due to an internal error\./);
  // The prompt's doing, not the token's: two uses, no error.
  const tok = await waitFor(async () => {
    const x = await g.tokenById(ctx, t.id);
    return x.use_count === 2 ? x : null;
  }, { what: 'two uses counted' });
  assert.equal(tok.error_count, 0);
  assert.equal(tok.image_count, 0);
  await waitFor(() => d.sqlite(`SELECT count(*) FROM request_logs WHERE operation = 'generate_image' AND status_code = 502`) === '2',
    { what: 'two 502 request logs' });
});

test('a prompt refused at submit for content policy is a content-policy result, not retried', async () => {
  await fresh(2);
  const why = 'Content policy violation: This prompt violates our content policies.';
  const s = await stream({ model: 'sora-video-10s', messages: user(tag('#reject this')) });
  g.assertShape(s.rcs, [S.started, S.violation('This prompt violates our content policies.')]);
  assert.deepEqual(s.content, { type: 'error', error: why, data: { error: why, code: 'content_policy_violation' } });
  assert.equal(creates(s.calls).length, 1);
  const r = await plain({ model: 'sora-image', messages: user(tag('#reject me')) });
  assert.deepEqual(g.parseCompletion(r, 'content_filter'), { type: 'error', error: why, data: { error: why, code: 'content_policy_violation' } });
  assert.equal(g.byPath(r.calls, 'POST', '/backend/video_gen').length, 1);
  // A refusal that is not about content fails with generation_failed.
  await fake.arm({ route: 'POST /backend/nf/create', status: 400, times: 1,
    body: { error: { message: 'Invalid n_frames', type: 'invalid_request_error', param: 'n_frames', code: 'invalid_n_frames' } } });
  const bad = await stream({ model: 'sora-video-10s', messages: user(tag('a plain refusal')) });
  const e = streamError(bad, 'generation_failed');
  assert.match(e.message, /Invalid n_frames/);
  assert.equal(creates(bad.calls).length, 1);
});

test('a 401 while polling fails the job with token_invalidated and invalidates the token', async () => {
  const [t] = await fresh();
  await fake.arm({ route: 'GET /backend/nf/pending', preset: 'token_invalidated', skip: 1 });
  const r = await plain({ model: 'sora-video-10s', messages: user(tag('revoked midway')) });
  g.assertHttpError(r, 502, 'token_invalidated', 'upstream_error');
  assert.equal(g.byPath(r.calls, 'GET', '/backend/nf/pending').length, 2);
  const tok = await waitFor(async () => {
    const x = await g.tokenById(ctx, t.id);
    return x.state === 'invalid' ? x : null;
  }, { what: 'the token invalid' });
  assert.equal(tok.is_active, false);
  // Streamed: the same code as an error event.
  const [u] = await fresh();
  await fake.arm({ route: 'GET /backend/nf/pending', preset: 'token_invalidated', skip: 1 });
  const s = await stream({ model: 'sora-video-10s', messages: user(tag('revoked midway, streamed')) });
  g.assertShape(s.rcs, [S.started, S.submitted]);
  streamError(s, 'token_invalidated');
  await waitFor(async () => (await g.tokenById(ctx, u.id)).state === 'invalid', { what: 'the second token invalid' });
});

test('a 429 at submit moves the job to another token and cools the first', async () => {
  const [a, b] = await fresh(2);
  await fake.arm({ route: 'POST /backend/nf/create', preset: 'too_many_concurrent_tasks', times: 1 });
  const s = await stream({ model: 'sora-video-10s', messages: user(tag('busy account')) });
  assert.equal(s.error, undefined, JSON.stringify(s.error));
  g.assertShape(s.rcs, g.videoSteps());
  assert.equal(s.content.type, 'video');
  const c = creates(s.calls);
  assert.deepEqual(c.map((e) => e.status), [429, 200]);
  assert.notEqual(c[0].token, c[1].token);
  assert.ok([a.at, b.at].includes(c[0].token) && [a.at, b.at].includes(c[1].token));
  const first = c[0].token === a.at ? a : b;
  const second = first === a ? b : a;
  const polls = s.calls.filter((e) => e.path === '/backend/nf/pending');
  assert.ok(polls.length > 0 && polls.every((e) => e.token === second.at), 'polled with the token that took the job');
  const t = await waitFor(async () => {
    const x = await g.tokenById(ctx, first.id);
    return x.state === 'cooling' ? x : null;
  }, { what: 'the first token cooling' });
  assert.ok(t.cooled_until, 'cooled_until is set');
  assert.equal((await g.tokenById(ctx, second.id)).state, 'active');
});

test('heavy load once: the job is retried on another token and succeeds', async () => {
  const [a, b] = await fresh(2);
  await fake.arm({ route: 'POST /backend/nf/create', preset: 'heavy_load', times: 1 });
  const r = await plain({ model: 'sora-video-10s', messages: user(tag('heavy load')) });
  assert.equal(g.parseCompletion(r).type, 'video');
  const c = creates(r.calls);
  assert.deepEqual(c.map((e) => e.status), [503, 200]);
  assert.notEqual(c[0].token, c[1].token);
  for (const t of [a, b]) assert.equal((await g.tokenById(ctx, t.id)).state, 'active');
});

test('a 401 at submit invalidates the token and moves the job on', async () => {
  const [a, b] = await fresh(2);
  await fake.arm({ route: 'POST /backend/video_gen', preset: 'token_invalidated', times: 1 });
  const s = await stream({ model: 'sora-image', messages: user(tag('bad token at submit')) });
  assert.equal(s.error, undefined, JSON.stringify(s.error));
  assert.equal(s.content.type, 'image');
  const c = g.byPath(s.calls, 'POST', '/backend/video_gen');
  assert.deepEqual(c.map((e) => e.status), [401, 200]);
  const first = c[0].token === a.at ? a : b;
  await waitFor(async () => (await g.tokenById(ctx, first.id)).state === 'invalid', { what: 'the token invalid' });
});

test('submit_attempts bounds how many tokens a job is tried on', async () => {
  await fresh(4);
  await fake.arm({ route: 'POST /backend/nf/create', preset: 'heavy_load', times: -1 });
  const r = await plain({ model: 'sora-video-10s', messages: user(tag('always busy')) });
  g.assertHttpError(r, 502, 'generation_failed', 'upstream_error');
  const c = creates(r.calls);
  assert.equal(c.length, 3, '[upstream] submit_attempts defaults to 3');
  assert.equal(new Set(c.map((e) => e.token)).size, 3);
  assert.match(r.json.error.message, /heavy load/);
});

test('an image that cannot be uploaded or fetched fails with upload_failed', async () => {
  await fresh(3);
  await fake.arm({ route: 'POST /backend/uploads', status: 500, times: -1 });
  const img = [{ type: 'text', text: tag('animate this') },
    { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }];
  const s = await stream({ model: 'sora-video-10s', messages: user(img) });
  assert.equal(s.rcs[0].message, S.started.message);
  assert.ok(s.rcs.slice(1).every((x) => x.message === S.uploading.message), JSON.stringify(s.rcs));
  streamError(s, 'upload_failed');
  assert.equal(creates(s.calls).length, 0);
  assert.equal(g.byPath(s.calls, 'POST', '/backend/uploads').length, 3, 'one upload per attempt');
  const r = await plain({ model: 'sora-image', messages: user(img) });
  g.assertHttpError(r, 502, 'upload_failed', 'upstream_error');
  await g.disarm(fake);
  const missing = await plain({ model: 'sora-image', messages: user([{ type: 'text', text: tag('from nowhere') },
    { type: 'image_url', image_url: { url: `${fake.url}/no/such/image.png` } }]) });
  g.assertHttpError(missing, 502, 'upload_failed', 'upstream_error');
  assert.equal(g.byPath(missing.calls, 'POST', '/backend/uploads').length, 0);
});

test('an upload failing on the only token is upload_failed, not a wait for another token', async () => {
  await fresh(1);
  await fake.arm({ route: 'POST /backend/uploads', status: 500, times: -1 });
  assert.equal((await admin('/api/admin/config', { queue_timeout: 1 })).status, 200);
  try {
    const r = await plain({ model: 'sora-image', messages: user([{ type: 'text', text: tag('one token only') },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }]) });
    g.assertHttpError(r, 502, 'upload_failed', 'upstream_error');
  } finally {
    await g.disarm(fake);
    assert.equal((await admin('/api/admin/config', { queue_timeout: 60 })).status, 200);
  }
});

test('failures the request caused never count toward error_ban_threshold', async () => {
  const [t] = await fresh();
  const img = (p) => plain({ model: 'sora-image', messages: user(tag(p)) });
  // An image Sora fails, a content-policy refusal at submit and while
  // polling: uses of the token, none of them its fault.
  for (const p of ['#fail one', '#fail two', '#fail three', '#fail four']) {
    g.assertHttpError(await img(p), 502, 'generation_failed');
  }
  assert.equal(g.parseCompletion(await img('#reject this'), 'content_filter').type, 'error');
  const vid = await plain({ model: 'sora-video-10s', messages: user(tag('#violate this')) });
  assert.equal(g.parseCompletion(vid, 'content_filter').type, 'error');
  const tok = await waitFor(async () => {
    const x = await g.tokenById(ctx, t.id);
    return x.use_count === 6 ? x : null;
  }, { what: 'six uses counted' });
  assert.equal(tok.error_count, 0);
  assert.equal(tok.consecutive_errors, 0);
  assert.equal(tok.state, 'active');
});

test('consecutive token faults disable the token; a success resets the run', async () => {
  const [t] = await fresh();
  const vid = (p) => plain({ model: 'sora-video-10s', messages: user(tag(p)) });
  // A video that never gets a file is the upstream's fault.
  g.assertHttpError(await vid('#fail one'), 502, 'generation_failed');
  assert.equal(g.parseCompletion(await vid('fine')).type, 'video');
  let tok = await waitFor(async () => {
    const x = await g.tokenById(ctx, t.id);
    return x.error_count === 1 && x.video_count === 1 ? x : null;
  }, { what: 'one error and one video counted' });
  assert.equal(tok.consecutive_errors, 0);
  assert.equal(tok.use_count, 2, 'a failed generation is a use too');
  for (const p of ['#fail two', '#fail three']) g.assertHttpError(await vid(p), 502, 'generation_failed');
  tok = await waitFor(async () => {
    const x = await g.tokenById(ctx, t.id);
    return x.error_count === 3 ? x : null;
  }, { what: 'three errors counted' });
  assert.equal(tok.state, 'active', 'two in a row is under error_ban_threshold (3)');
  g.assertHttpError(await vid('#fail four'), 502, 'generation_failed');
  tok = await waitFor(async () => {
    const x = await g.tokenById(ctx, t.id);
    return x.state === 'disabled' ? x : null;
  }, { what: 'the token disabled' });
  assert.match(tok.state_reason, /disabled after 3 consecutive errors/);
});

test('late drafts, drafts without a URL yet and images not listed yet are polled again', async () => {
  await fresh();
  for (const [p, drafts] of [['#latedraft', 3], ['#nourl', 3]]) {
    const s = await stream({ model: 'sora-video-10s', messages: user(tag(`${p} video`)) });
    assert.equal(s.error, undefined, JSON.stringify(s.error));
    g.assertShape(s.rcs, g.videoSteps());
    const task = await g.fakeTask(fake, taskIdOf(s));
    assert.deepEqual(s.content, g.videoResult(`${fake.url}/media/vid/${task.draft.id}.mp4`));
    assert.equal(g.byPath(s.calls, 'GET', '/backend/nf/pending').length, 4, p);
    assert.equal(g.byPath(s.calls, 'GET', '/backend/project_y/profile/drafts').length, drafts, p);
  }
  const s = await stream({ model: 'sora-image', messages: user(tag('#invisible image')) });
  assert.equal(s.error, undefined, JSON.stringify(s.error));
  g.assertShape(s.rcs, g.imageSteps());
  assert.equal(g.byPath(s.calls, 'GET', '/backend/v2/recent_tasks').length, 4);
});

test('drafts are followed across pages until every finished task is found', async () => {
  await fresh(1, {}, { max_concurrent: 0 });
  await g.fakeCall(fake, 'POST', '/__fake/config', { max_page_size: 4 });
  try {
    const since = await g.lastSeq(fake);
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      g.chat(d, { model: 'sora-video-10s', messages: user(tag(`page ${i}`)), stream: true })));
    const urls = new Set(rs.map((r) => {
      const s = g.parseStream(r);
      assert.equal(s.error, undefined, JSON.stringify(s.error));
      return s.content.url;
    }));
    assert.equal(urls.size, 10);
    const drafts = g.byPath(await g.genCalls(fake, since), 'GET', '/backend/project_y/profile/drafts');
    assert.ok(drafts.some((e) => e.query.cursor), 'a later page was read');
    assert.ok(drafts.length <= 20, `${drafts.length} drafts reads`);
  } finally {
    await g.fakeCall(fake, 'POST', '/__fake/config', { max_page_size: 100 });
  }
});

test('no token could ever serve: no_available_token with the reasons at once', async () => {
  await fresh(0);
  const logs503 = Number(d.sqlite('SELECT count(*) FROM request_logs WHERE status_code = 503'));
  // A long queue_timeout: waiting cannot help, so the answer must not wait.
  assert.equal((await admin('/api/admin/config', { queue_timeout: 30 })).status, 200);
  try {
    let t0 = Date.now();
    const r = await plain({ model: 'sora-video-10s', messages: user(tag('nobody home')) });
    assert.ok(Date.now() - t0 < 2000, `answered after ${Date.now() - t0} ms`);
    g.assertHttpError(r, 503, 'no_available_token', 'server_error');
    assert.match(r.json.error.message, /no video token is available: the pool has no usable token/);
    assert.equal(r.calls.length, 0);
    const off = await g.addToken(ctx);
    assert.equal((await request(d.base, 'POST', `/api/tokens/${off.id}/disable`, { headers: ctx.H })).status, 200);
    t0 = Date.now();
    const s = await stream({ model: 'sora-image', messages: user(tag('nobody home, streamed')) });
    assert.ok(Date.now() - t0 < 2000, `answered after ${Date.now() - t0} ms`);
    g.assertShape(s.rcs, [S.started]);
    const e = streamError(s, 'no_available_token');
    assert.match(e.message, /1 disabled/);
    await waitFor(() => Number(d.sqlite('SELECT count(*) FROM request_logs WHERE status_code = 503')) === logs503 + 2,
      { what: 'two 503 request logs' });
  } finally {
    assert.equal((await admin('/api/admin/config', { queue_timeout: 60 })).status, 200);
  }
});

test('the file cache: /tmp URLs on this host or the base URL, served with ranges', async () => {
  await fresh();
  assert.equal((await admin('/api/cache/enabled', { enabled: true })).status, 200);
  try {
    const s = await stream({ model: 'sora-image', messages: user(tag('cache me')) });
    g.assertShape(s.rcs, g.imageSteps().concat([S.cacheStarted(1), S.cacheDone(1)]));
    const url = s.content.urls[0];
    assert.deepEqual(s.content, g.imageResult([url]));
    const m = new RegExp(`^http://127\\.0\\.0\\.1:${d.port}/tmp/([\\w-]+\\.png)$`).exec(url);
    assert.ok(m, url);
    assert.ok(fs.existsSync(path.join(d.dir, 'cache', m[1])));
    let r = await request(d.base, 'GET', new URL(url).pathname);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'image/png');
    assert.ok(r.body.equals(png));
    r = await request(d.base, 'GET', new URL(url).pathname, { headers: { Range: 'bytes=0-9' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 0-9/${png.length}`);
    assert.ok(r.body.equals(png.subarray(0, 10)));
    // A video, not streamed, with a base URL set.
    assert.equal((await admin('/api/cache/base-url', { base_url: 'http://cdn.example.test:8080/' })).status, 200);
    const v = await plain({ model: 'sora-video-10s', messages: user(tag('cache my video')) });
    const vu = g.parseCompletion(v).url;
    const vm = /^http:\/\/cdn\.example\.test:8080\/tmp\/([\w-]+\.mp4)$/.exec(vu);
    assert.ok(vm, vu);
    assert.deepEqual(g.parseCompletion(v), g.videoResult(vu));
    const mp4 = Buffer.from(await (await fetch(`${fake.url}/media/x.mp4`)).arrayBuffer());
    r = await request(d.base, 'GET', `/tmp/${vm[1]}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.ok(r.body.equals(mp4));
    r = await request(d.base, 'GET', `/tmp/${vm[1]}`, { headers: { Range: 'bytes=-16' } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(mp4.subarray(mp4.length - 16)));
    // The task row keeps the URL the client got.
    await waitFor(() => d.sqlite(`SELECT result_urls FROM tasks WHERE result_urls LIKE '%${vm[1]}%'`) !== '',
      { what: 'the cached URL in the task row' });
  } finally {
    await admin('/api/cache/base-url', { base_url: '' });
    await admin('/api/cache/enabled', { enabled: false });
  }
});

test('a download that fails leaves the upstream URL and says so', async () => {
  await fresh();
  assert.equal((await admin('/api/cache/enabled', { enabled: true })).status, 200);
  try {
    await fake.arm({ route: 'GET /media/*', status: 500, times: -1 });
    const s = await stream({ model: 'sora-image', messages: user(tag('uncacheable')) });
    g.assertShape(s.rcs, g.imageSteps().concat([S.cacheStarted(1), S.cacheError]));
    const task = await g.fakeTask(fake, taskIdOf(s));
    assert.deepEqual(s.content, g.imageResult([`${fake.url}${task.generations[0].path}`]));
  } finally {
    await g.disarm(fake);
    await admin('/api/cache/enabled', { enabled: false });
  }
});

test('watermark-free: the published video from the third-party template', async () => {
  const [t] = await fresh();
  const tpl = `${fake.url}/MP4/{post_id}.mp4?sig=1&exp=2`;
  let r = await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'third_party', third_party_url: tpl });
  assert.equal(r.status, 200, r.text);
  try {
    const s = await stream({ model: 'sora-video-10s', messages: user(tag('no watermark please')) });
    const task = await g.fakeTask(fake, taskIdOf(s));
    const gen = task.draft.id;
    const wm = s.rcs.find((x) => x.stage === 'watermark_free' && x.status === 'completed');
    assert.ok(wm, JSON.stringify(s.rcs));
    const post = wm.details.post_id;
    assert.match(post, /^s_[0-9a-f]{32}$/);
    g.assertShape(s.rcs, g.videoSteps().concat([S.wmStarted(gen), S.wmDone(post, 'third_party')]));
    const url = tpl.replace('{post_id}', post);
    assert.deepEqual(s.content, g.videoResult(url));
    assert.ok(s.text.includes('sig=1&exp=2'));
    assert.doesNotMatch(s.text, /\\u0026/);
    const pub = g.byPath(s.calls, 'POST', '/backend/project_y/post');
    assert.equal(pub.length, 1);
    assert.deepEqual(pub[0].body.attachments_to_create[0], { generation_id: gen, kind: 'sora' });
    assert.ok(pub[0].headers['openai-sentinel-token']);
    assert.equal(pub[0].token, t.at);
    const v = await fetch(url);
    assert.equal(v.status, 200);
    assert.equal(v.headers.get('content-type'), 'video/mp4');
    // The custom parse server.
    r = await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'custom',
      custom_parse_url: fake.url, custom_parse_token: 'fake-parse-token' });
    assert.equal(r.status, 200, r.text);
    const c = await stream({ model: 'sora-video-10s', messages: user(tag('custom parse')) });
    const cw = c.rcs.find((x) => x.stage === 'watermark_free' && x.status === 'completed');
    assert.ok(cw, JSON.stringify(c.rcs));
    assert.equal(cw.details.parse_method, 'custom');
    assert.deepEqual(c.content, g.videoResult(`${fake.url}/MP4/${cw.details.post_id}.mp4`));
    assert.equal(g.byPath(c.calls, 'POST', '/get-sora-link').length, 1);
  } finally {
    await admin('/api/watermark-free/config', { watermark_free_enabled: false, parse_method: 'third_party',
      third_party_url: 'https://oscdn2.dyysy.com/MP4/{post_id}.mp4' });
  }
});

test('watermark-free publishing that fails falls back to the watermarked video', async () => {
  await fresh();
  const r = await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'third_party',
    third_party_url: `${fake.url}/MP4/{post_id}.mp4` });
  assert.equal(r.status, 200, r.text);
  try {
    await fake.arm({ route: 'POST /backend/project_y/post', status: 500, times: -1 });
    const s = await stream({ model: 'sora-video-10s', messages: user(tag('publish fails')) });
    const task = await g.fakeTask(fake, taskIdOf(s));
    g.assertShape(s.rcs, g.videoSteps().concat([S.wmStarted(task.draft.id), S.wmError]));
    assert.deepEqual(s.content, g.videoResult(`${fake.url}/media/vid/${task.draft.id}.mp4`));
  } finally {
    await g.disarm(fake);
    await admin('/api/watermark-free/config', { watermark_free_enabled: false });
  }
});

// The post's DELETE among the calls since `since` (the job sends it
// without waiting); resolves the deleted post id.
async function postDeleted(since) {
  return waitFor(async () => {
    const del = (await g.genCalls(fake, since)).find((e) => e.method === 'DELETE'
      && /^\/backend\/project_y\/post\/s_[0-9a-f]{32}$/.test(e.path));
    return del && (del.status === 200 || del.status === 204) ? del.path.split('/').pop() : null;
  }, { what: 'the post deleted' });
}

test('watermark-free: a clean URL that cannot be fetched falls back to the watermarked video', async () => {
  await fresh();
  const r = await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'third_party',
    third_party_url: `${fake.url}/MP4/{post_id}.mp4` });
  assert.equal(r.status, 200, r.text);
  try {
    // The third-party host has nothing: without the cache.
    await fake.arm({ route: 'GET /MP4/*', status: 404, times: -1 });
    let since = await g.lastSeq(fake);
    let s = await stream({ model: 'sora-video-10s', messages: user(tag('clean host down')) });
    let task = await g.fakeTask(fake, taskIdOf(s));
    g.assertShape(s.rcs, g.videoSteps().concat([S.wmStarted(task.draft.id), S.wmError]));
    assert.match(s.rcs[s.rcs.length - 1].message, /could not be fetched: HTTP 404/);
    assert.deepEqual(s.content, g.videoResult(`${fake.url}/media/vid/${task.draft.id}.mp4`));
    const gone = await postDeleted(since);
    assert.equal((await g.fakeCall(fake, 'GET', '/__fake/state')).posts.some((p) => p.id === gone), false);

    // With the cache: the clean file answers the first byte, then fails
    // to download; the watermarked file is cached instead.
    await g.disarm(fake);
    await fake.arm({ route: 'GET /MP4/*', status: 500, skip: 1, times: -1 });
    assert.equal((await admin('/api/cache/enabled', { enabled: true })).status, 200);
    since = await g.lastSeq(fake);
    s = await stream({ model: 'sora-video-10s', messages: user(tag('clean download breaks')) });
    task = await g.fakeTask(fake, taskIdOf(s));
    const wm = s.rcs.find((x) => x.stage === 'watermark_free' && x.status === 'completed');
    assert.ok(wm, JSON.stringify(s.rcs));
    g.assertShape(s.rcs, g.videoSteps().concat([S.wmStarted(task.draft.id), S.wmDone(wm.details.post_id, 'third_party'),
      S.cacheStarted(1), S.wmError, S.cacheDone(1)]));
    assert.match(s.content.url, new RegExp(`^http://127\\.0\\.0\\.1:${d.port}/tmp/[\\w-]+\\.mp4$`));
    const names = g.callNames(await g.genCalls(fake, since));
    assert.ok(names.includes(`GET /media/vid/${task.draft.id}.mp4`), names.join(', '));
    assert.equal(await postDeleted(since), wm.details.post_id);
  } finally {
    await g.disarm(fake);
    await admin('/api/cache/enabled', { enabled: false });
    await admin('/api/watermark-free/config', { watermark_free_enabled: false });
  }
});

test('watermark-free and the cache together: publish first, then cache the clean video', async () => {
  await fresh();
  let r = await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'third_party',
    third_party_url: `${fake.url}/MP4/{post_id}.mp4` });
  assert.equal(r.status, 200, r.text);
  assert.equal((await admin('/api/cache/enabled', { enabled: true })).status, 200);
  try {
    const s = await stream({ model: 'sora-video-10s', messages: user(tag('clean and cached')) });
    const task = await g.fakeTask(fake, taskIdOf(s));
    const wm = s.rcs.find((x) => x.stage === 'watermark_free' && x.status === 'completed');
    assert.ok(wm, JSON.stringify(s.rcs));
    g.assertShape(s.rcs, g.videoSteps().concat([S.wmStarted(task.draft.id), S.wmDone(wm.details.post_id, 'third_party'),
      S.cacheStarted(1), S.cacheDone(1)]));
    const url = s.content.url;
    assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${d.port}/tmp/[\\w-]+\\.mp4$`));
    assert.deepEqual(s.content, g.videoResult(url));
    const names = g.callNames(s.calls);
    assert.ok(names.indexOf(`GET /MP4/${wm.details.post_id}.mp4`) > names.indexOf('POST /backend/project_y/post'),
      names.join(', '));
    r = await request(d.base, 'GET', new URL(url).pathname);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.equal(await postDeleted(s.calls[0].seq - 1), wm.details.post_id);
  } finally {
    await admin('/api/cache/enabled', { enabled: false });
    await admin('/api/watermark-free/config', { watermark_free_enabled: false });
  }
});

// Last: timeouts below what the API accepts (60 s at least), written
// straight into the shared settings snapshot by a test hook.
test('no result within the timeout: generation_timeout', async () => {
  const [t] = await fresh();
  const o = await request(d.base, 'POST', '/__test/shm-settings', { body: JSON.stringify({ image_timeout: 2, video_timeout: 2 }) });
  assert.equal(o.status, 200, o.text);
  const t0 = Date.now();
  const stalled = tag('#stall forever');
  const running = (async () => {
    await new Promise((res) => setTimeout(res, 1000));
    return d.sqlite(`SELECT status || '|' || upstream_task_id || '|' || token_id FROM tasks WHERE prompt = '${stalled}'`);
  })();
  const [r, s, v] = await Promise.all([
    plain({ model: 'sora-video-10s', messages: user(stalled) }),
    stream({ model: 'sora-image', messages: user(tag('#stall forever, an image')) }),
    stream({ model: 'sora-video-10s', messages: user(tag('#vanish never drafted')) }),
  ]);
  const took = Date.now() - t0;
  assert.ok(took >= 1800 && took < 6000, `timed out after ${took} ms`);
  g.assertHttpError(r, 504, 'generation_timeout', 'timeout_error');
  // While it ran, the row said so, with the upstream task and the token.
  assert.match(await running, new RegExp(`^running\\|task_\\w+\\|${t.id}$`));
  streamError(s, 'generation_timeout');
  assert.equal(s.rcs[0].message, S.started.message);
  // (Two jobs share the account here, so a pending read may advance both.)
  g.assertShape(v.rcs.slice(0, 2), [S.started, S.submitted]);
  assert.ok(v.rcs.slice(2).every((x) => /^Video generation progress: \d+%$/.test(x.message)), JSON.stringify(v.rcs));
  streamError(v, 'generation_timeout');
  await waitFor(() => d.sqlite('SELECT count(*) FROM request_logs WHERE status_code = 504') === '3',
    { what: 'three 504 request logs' });
});
