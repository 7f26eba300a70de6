'use strict';
// Generation through /v1/chat/completions against the fake upstream:
// a pool set up for it, the chat call, the SSE parser, the progress
// steps of docs/generation.md, and journal helpers.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Daemon, request, adminLogin, AUTH } = require('./daemon');
const { startFake } = require('./fake');

const json = (o) => JSON.stringify(o);

// A fake upstream and a daemon polling it every `poll` ms, with the
// background quota sweep off (tests read exact upstream call sequences).
// `sections` adds configuration sections ({paths: {...}, limits: {...}}).
async function startGenPool({ workers = '2', poll = 50, upstream = {}, server = {}, allowedErrors = [], env = {}, sections = {} } = {}) {
  const fake = await startFake();
  const conf = Object.assign({}, sections, {
    server: Object.assign({ workers: String(workers) }, server),
    // The fake serves image URLs from 127.0.0.1: allow private addresses.
    upstream: Object.assign({}, fake.conf.upstream,
      { poll_interval_ms: String(poll), fetch_private_urls: 'yes' }, upstream),
  });
  const d = await new Daemon({ conf, allowedErrors, env }).start();
  const H = await adminLogin(d);
  const r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ quota_refresh_interval: 0 }) });
  assert.equal(r.status, 200, r.text);
  return { fake, d, H };
}

// Control calls the fake helper does not wrap.
async function fakeCall(fake, method, p, body) {
  const r = await fetch(fake.url + p, {
    method, headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

const fakeTask = (fake, id) => fakeCall(fake, 'GET', `/__fake/tasks/${id}`);
const disarm = (fake) => fakeCall(fake, 'DELETE', '/__fake/arm');
const fakeStats = (fake) => fakeCall(fake, 'GET', '/__fake/stats');

// The bytes the fake serves for /media/<x>.png (a real 16x16 PNG).
async function pngBytes(fake) {
  return Buffer.from(await (await fetch(`${fake.url}/media/input.png`)).arrayBuffer());
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// A fresh fake account added to the pool; resolves {id, acc, at}.
async function addToken(ctx, tokenOpts = {}, accountOpts = {}) {
  const acc = await ctx.fake.account(accountOpts);
  const r = await request(ctx.d.base, 'POST', '/api/tokens', { headers: ctx.H,
    body: json(Object.assign({ token: acc.access_token }, tokenOpts)) });
  assert.equal(r.status, 200, r.text);
  return { id: r.json.token_id, acc, at: acc.access_token };
}

const listTokens = async (ctx) => (await request(ctx.d.base, 'GET', '/api/tokens', { headers: ctx.H })).json;
const tokenById = async (ctx, id) => (await listTokens(ctx)).find((t) => t.id === id);

// Deletes every token of the pool.
async function emptyPool(ctx) {
  for (const t of await listTokens(ctx)) {
    const r = await request(ctx.d.base, 'DELETE', `/api/tokens/${t.id}`, { headers: ctx.H });
    assert.equal(r.status, 200, r.text);
  }
}

function chat(d, body, { timeout = 30000, headers = {} } = {}) {
  return request(d.base, 'POST', '/v1/chat/completions', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH, headers),
    body: json(body), timeout,
  });
}

const user = (content) => [{ role: 'user', content }];

// Splits an SSE answer into events and checks the framing and the
// chunk shape common to every generation stream. Returns {events,
// chunks, rcs (reasoning_content, timestamps dropped), final, error}.
function parseStream(r) {
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  assert.equal(r.headers['cache-control'], 'no-cache');
  assert.equal(r.headers['x-accel-buffering'], 'no');
  const text = r.text;
  assert.ok(text.endsWith('\n\n'), `stream ends with a blank line: ${JSON.stringify(text.slice(-40))}`);
  const pieces = text.slice(0, -2).split('\n\n');
  const events = [];
  for (const p of pieces) {
    if (p === ': keep-alive') continue;
    assert.ok(p.startsWith('data: ') && !p.includes('\n'), `an SSE event: ${JSON.stringify(p)}`);
    events.push(p.slice(6));
  }
  assert.equal(events[events.length - 1], '[DONE]', 'data: [DONE] comes last');
  assert.equal(events.filter((e) => e === '[DONE]').length, 1);
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  // Every event is a chunk with choices (the contract's parsers index
  // choices[0] of each): a failure ends with an error result, never a
  // bare {"error": ...} object.
  chunks.forEach((o, i) => assert.ok(Array.isArray(o.choices) && o.error === undefined,
    `event ${i} is a chat.completion.chunk: ${JSON.stringify(o)}`));
  assert.ok(chunks.length >= 1, 'at least one chunk');
  const id = chunks[0].id;
  assert.match(String(id), /^chatcmpl-/);
  chunks.forEach((c, i) => {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, 'sora');
    assert.equal(c.id, id, 'every chunk has the same id');
    assert.ok(Number.isInteger(c.created), 'created is an integer');
    assert.equal(c.choices.length, 1);
    assert.equal(c.choices[0].index, 0);
    const delta = c.choices[0].delta;
    // README "流式响应格式说明": native_finish_reason mirrors finish_reason.
    assert.equal(c.choices[0].native_finish_reason, c.choices[0].finish_reason);
    if (i === 0) assert.equal(delta.role, 'assistant', 'the first chunk carries the role');
    else assert.equal(delta.role, undefined, `only the first chunk carries the role (chunk ${i})`);
  });
  const rcs = [];
  let final = null;
  let content = null;
  chunks.forEach((c, i) => {
    const ch = c.choices[0];
    if (typeof ch.delta.content === 'string') {
      assert.equal(final, null, 'one result chunk');
      assert.equal(i, chunks.length - 1, 'the result chunk is the last chunk');
      content = JSON.parse(ch.delta.content);
      const policy = content.type === 'error' && content.data && content.data.code === 'content_policy_violation';
      assert.equal(ch.finish_reason, policy ? 'content_filter' : 'STOP');
      assert.deepEqual(c.usage, { prompt_tokens: 0, completion_tokens: 1, total_tokens: 1 });
      final = c;
    } else {
      assert.equal(ch.finish_reason, null, `progress chunk ${i} has no finish_reason`);
      const rc = ch.delta.reasoning_content;
      assert.equal(typeof rc, 'object', `chunk ${i} carries reasoning_content`);
      assert.ok(rc !== null, `chunk ${i} carries reasoning_content`);
      const copy = Object.assign({}, rc);
      delete copy.timestamp;
      rcs.push(copy);
    }
  });
  assert.ok(final !== null, 'a result chunk ends the stream');
  // A failure (anything but a content-policy refusal): {message, code}.
  let error;
  if (content.type === 'error') {
    assert.deepEqual(Object.keys(content).sort(), ['data', 'error', 'type']);
    assert.deepEqual(Object.keys(content.data).sort(), ['code', 'error']);
    assert.equal(content.data.error, content.error);
    assert.equal(typeof content.data.code, 'string');
    if (content.data.code !== 'content_policy_violation') error = { message: content.error, code: content.data.code };
  }
  return { events, chunks, rcs, final, error, content, text };
}

// `expected` with every predicate (a function) replaced by the actual
// value when the predicate accepts it, so deepEqual shows real diffs.
function fill(expected, actual) {
  if (typeof expected === 'function') {
    return expected(actual) ? actual : `<${expected.name || 'predicate'} rejects ${JSON.stringify(actual)}>`;
  }
  if (Array.isArray(expected)) {
    return expected.map((e, i) => fill(e, Array.isArray(actual) ? actual[i] : undefined));
  }
  if (expected && typeof expected === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(expected)) out[k] = fill(v, actual && typeof actual === 'object' ? actual[k] : undefined);
    return out;
  }
  return expected;
}

function assertShape(actual, expected, msg) {
  assert.deepEqual(actual, fill(expected, actual), msg);
}

const isTaskId = function taskId(v) { return typeof v === 'string' && /^task_\w+$/.test(v); };
const isString = function nonEmptyString(v) { return typeof v === 'string' && v.length > 0; };

// The progress steps of docs/generation.md (table "The stream").
const S = {
  started: { stage: 'generation', status: 'started', message: 'Initializing generation request...' },
  storyboard: (n) => ({ stage: 'storyboard', status: 'processing',
    message: 'Detected storyboard format. Converting to storyboard API format...',
    details: { shots: function shots(v) { return v === n || (Array.isArray(v) && v.length === n); } } }),
  remix: (id) => ({ stage: 'remix', status: 'started', message: `Remixing ${id}...`, details: { remix_target_id: id } }),
  uploading: { stage: 'upload', status: 'started', message: 'Uploading image to server...' },
  uploaded: { stage: 'upload', status: 'completed', message: 'Image uploaded successfully. Proceeding to generation...' },
  submitted: { stage: 'generation', status: 'processing', progress: 0, message: 'Generation task submitted',
    details: { task_id: isTaskId } },
  image: (n) => ({ stage: 'generation', status: 'processing', progress: n,
    message: `Image generation in progress: ${n}% completed...`, details: { task_status: 'processing' } }),
  video: (n) => ({ stage: 'generation', status: 'processing', progress: n,
    message: `Video generation progress: ${n}%`, details: { task_status: 'running' } }),
  imageDone: { stage: 'generation', status: 'completed', progress: 100, message: 'Image generation completed' },
  videoDone: { stage: 'generation', status: 'completed', progress: 100, message: 'Video generation completed' },
  wmStarted: (gen) => ({ stage: 'watermark_free', status: 'started',
    message: 'Publishing the video to remove the watermark...', details: { generation_id: gen } }),
  wmDone: (post, method) => ({ stage: 'watermark_free', status: 'completed', message: 'Watermark-free video ready',
    details: { post_id: post, parse_method: method } }),
  wmError: { stage: 'watermark_free', status: 'error',
    message: function wmFailed(m) { return /^Watermark-free failed, using the watermarked video: .+/.test(m); },
    details: { error: isString } },
  // "file(s)" in the doc; a message that says "1 file" / "2 files" is as good.
  cacheStarted: (n) => ({ stage: 'cache', status: 'started', details: { file_count: n },
    message: function caching(m) { return [`Caching ${n} file(s)...`, `Caching ${n} file${n === 1 ? '' : 's'}...`].includes(m); } }),
  cacheDone: (n) => ({ stage: 'cache', status: 'completed', details: { file_count: n },
    message: function cached(m) { return [`Cached ${n} file(s)`, `Cached ${n} file${n === 1 ? '' : 's'}`].includes(m); } }),
  cacheError: { stage: 'cache', status: 'error',
    message: function cacheFailed(m) { return /^Caching failed, using the upstream URL: .+/.test(m); },
    details: { error: isString } },
  violation: (reason) => ({ stage: 'error', status: 'error', message: `Content policy violation: ${reason}`,
    details: { error_type: 'content_policy_violation', reason } }),
};

// The whole sequence of a default-script image / video after `pre`.
const imageSteps = (pre = []) => [S.started, ...pre, S.submitted, S.image(50), S.imageDone];
const videoSteps = (pre = []) => [S.started, ...pre, S.submitted, S.video(30), S.video(70), S.videoDone];

const imageResult = (urls) => ({ type: 'image', urls, count: urls.length, data: urls.map((url) => ({ url })) });
const videoResult = (url) => ({ type: 'video', url, data: [{ url, revised_prompt: null }] });

// The OpenAI chat.completion answer of a non-streaming request.
function parseCompletion(r, finish = 'stop') {
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /^application\/json/);
  const b = r.json;
  assert.deepEqual(Object.keys(b).sort(), ['choices', 'created', 'id', 'model', 'object', 'usage']);
  assert.match(b.id, /^chatcmpl-/);
  assert.equal(b.object, 'chat.completion');
  assert.equal(b.model, 'sora');
  assert.ok(Number.isInteger(b.created));
  assert.equal(b.choices.length, 1);
  assert.equal(b.choices[0].index, 0);
  assert.equal(b.choices[0].message.role, 'assistant');
  assert.equal(typeof b.choices[0].message.content, 'string');
  assert.equal(b.choices[0].finish_reason, finish);
  assert.deepEqual(b.usage, { prompt_tokens: 0, completion_tokens: 1, total_tokens: 1 });
  return JSON.parse(b.choices[0].message.content);
}

// An HTTP error in the OpenAI envelope.
function assertHttpError(r, status, code, type) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, r.text);
  assert.equal(r.json.error.code, code, r.text);
  if (type) assert.equal(r.json.error.type, type, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  return r.json.error;
}

// Generation-related upstream calls since `since` (ignores the quota
// reads and the sentinel endpoint).
async function genCalls(fake, since = 0) {
  const j = await fake.journal(`?since=${since}`);
  return j.entries.filter((e) => !/^\/backend\/nf\/check$|^\/backend-api\//.test(e.path));
}
const lastSeq = async (fake) => (await fake.journal('?limit=1')).last_seq;
const callNames = (entries) => entries.map((e) => `${e.method} ${e.path}`);
const byPath = (entries, method, p) => entries.filter((e) => e.method === method && e.path === p);

module.exports = {
  json, startGenPool, fakeCall, fakeTask, disarm, fakeStats, pngBytes, sha256, addToken, listTokens, tokenById,
  emptyPool, chat, user, parseStream, fill, assertShape, isTaskId, isString, S, imageSteps, videoSteps,
  imageResult, videoResult, parseCompletion, assertHttpError, genCalls, lastSeq, callNames, byPath,
};
