'use strict';
// The Videos API, first slice (docs/videos.md): /v1/videos create (sync
// and async, JSON and multipart), retrieve, list, content and delete,
// through the official openai client and raw requests, against the fake
// upstream; new-api's multipart flow; bad input.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { request, waitFor, AUTH } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');
const OpenAI = require('openai');

let ctx;
let fake;
let d;
let client;
let png;
let nonce = 0;
const tag = (s) => `${s} [v${++nonce}]`;
const ID = /^job_[0-9a-f]{24}$/;

before(async () => {
  ctx = await g.startGenPool({ workers: 1 });
  ({ fake, d } = ctx);
  await g.addToken(ctx, { video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
  png = await g.pngBytes(fake);
  client = new OpenAI.OpenAI({ apiKey: AUTH.Authorization.slice(7), baseURL: `${d.base}/v1`, maxRetries: 0 });
});
after(() => stopPool(ctx));

function post(p, body, headers = {}) {
  return request(d.base, 'POST', p, {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH, headers),
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), timeout: 30000,
  });
}
const get = (p, headers = {}) => request(d.base, 'GET', p, { headers: Object.assign({}, AUTH, headers) });

async function setConfig(body) {
  const r = await request(d.base, 'POST', '/api/admin/config', { headers: Object.assign({ 'Content-Type': 'application/json' }, ctx.H), body: JSON.stringify(body) });
  assert.equal(r.status, 200, r.text);
}

async function setCache(enabled) {
  const r = await request(d.base, 'POST', '/api/cache/enabled', { headers: Object.assign({ 'Content-Type': 'application/json' }, ctx.H), body: JSON.stringify({ enabled }) });
  assert.equal(r.status, 200, r.text);
}

// Runs `fn`; returns its value and the body of the nf/create call it made.
async function observe(fn) {
  const since = await g.lastSeq(fake);
  const value = await fn();
  const calls = await g.genCalls(fake, since);
  const create = g.byPath(calls, 'POST', '/backend/nf/create')[0];
  return { value, body: create && create.body };
}

// Retrieves until the job ends, as the SDKs' poll helpers do.
async function poll(id) {
  for (let i = 0; i < 400; i++) {
    const v = await client.videos.retrieve(id);
    if (v.status === 'completed' || v.status === 'failed') return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`video ${id} did not finish`);
}

function assertVideo(v, { status, model, seconds, size, prompt, remixedFrom = null }) {
  assert.match(v.id, ID);
  assert.equal(v.object, 'video');
  assert.equal(v.status, status);
  if (model) assert.equal(v.model, model);
  if (seconds) assert.equal(v.seconds, seconds);
  if (size) assert.equal(v.size, size);
  if (prompt) assert.equal(v.prompt, prompt);
  assert.ok(Number.isInteger(v.created_at));
  assert.equal(v.created, v.created_at);
  assert.equal(v.remixed_from_video_id, remixedFrom);
  assert.ok(Array.isArray(v.data));
  if (status === 'completed') {
    assert.equal(v.progress, 100);
    assert.ok(Number.isInteger(v.completed_at));
    assert.equal(v.error, null);
    assert.equal(v.data.length, 1);
    assert.match(v.data[0].url, /^http:\/\/.+\.mp4$/);
    if (prompt) assert.equal(v.data[0].revised_prompt, prompt);
  }
}

test('videos.create, sync (the user document): completed with data[0].url', async () => {
  const prompt = tag('a cat walking in the garden');
  const v = await client.videos.create({ prompt, model: 'sora-video-10s' });
  assertVideo(v, { status: 'completed', model: 'sora-video-10s', seconds: '10', size: '1280x720', prompt });
  const file = await fetch(v.data[0].url);
  assert.equal(file.status, 200);
  // The row says the same.
  assertVideo(await client.videos.retrieve(v.id), { status: 'completed', model: 'sora-video-10s', prompt });
});

test('JSON body, sync: the user document curl example', async () => {
  const prompt = tag('A cat walking in the garden');
  const r = await post('/v1/videos', { prompt, model: 'sora-video-10s' });
  assert.equal(r.status, 200, r.text);
  assertVideo(r.json, { status: 'completed', model: 'sora-video-10s', prompt });
});

test('videos.create with sora-2: async, queued at once, then retrieve until completed', async () => {
  const prompt = tag('#slow a lighthouse at dusk');
  const v = await client.videos.create({ prompt, model: 'sora-2', seconds: '8', size: '1280x720' });
  assertVideo(v, { status: 'queued', model: 'sora-2', seconds: '10', size: '1280x720', prompt });
  assert.equal(v.progress, 0);
  assert.deepEqual(v.data, []);
  // While it runs: the poll-after header, and progress in 0..99.
  const r = await get(`/v1/videos/${v.id}`);
  assert.equal(r.status, 200);
  assert.ok(['queued', 'in_progress'].includes(r.json.status), r.text);
  assert.match(r.headers['openai-poll-after-ms'], /^\d+$/);
  assert.ok(r.json.progress >= 0 && r.json.progress < 100);
  const done = await poll(v.id);
  assertVideo(done, { status: 'completed', model: 'sora-2', seconds: '10', size: '1280x720', prompt });
  const fin = await get(`/v1/videos/${v.id}`);
  assert.equal(fin.headers['openai-poll-after-ms'], undefined);
});

// createAndPoll as the SDKs implement it (openai-python's
// videos.create_and_poll; openai-node has no such helper): create, then
// retrieve while queued or in_progress, sleeping what the
// openai-poll-after-ms header says, with the poll-helper header.
async function createAndPoll(body) {
  const created = await client.videos.create(body);
  let v = created;
  let polls = 0;
  while (v.status === 'queued' || v.status === 'in_progress') {
    const { data, response } = await client.videos
      .retrieve(v.id, { headers: { 'X-Stainless-Poll-Helper': 'true' } })
      .withResponse();
    v = data;
    polls++;
    if (v.status !== 'queued' && v.status !== 'in_progress') break;
    const after = response.headers.get('openai-poll-after-ms');
    assert.match(after, /^\d+$/, 'a running video carries openai-poll-after-ms');
    assert.ok(polls < 400, 'the job ends');
    await new Promise((r) => setTimeout(r, Number(after)));
  }
  return { created, v, polls };
}

test('createAndPoll: async create, polls steered by openai-poll-after-ms, completed; a failure ends the loop as failed', async () => {
  const prompt = tag('#slow poll helper');
  const { created, v, polls } = await createAndPoll({ prompt, model: 'sora-2' });
  assert.equal(created.status, 'queued');
  assert.ok(polls >= 1);
  assertVideo(v, { status: 'completed', model: 'sora-2', prompt });
  const failed = await createAndPoll({ prompt: tag('#violate poll helper'), model: 'sora-2' });
  assert.equal(failed.v.status, 'failed');
  assert.equal(failed.v.error.code, 'content_policy_violation');
});

test('sora-2-pro, 16 s, portrait: the portrait 15 s model; async: false answers when done', async () => {
  const prompt = tag('a tall tower');
  const { value: v, body } = await observe(() => client.videos.create({ prompt, model: 'sora-2-pro', seconds: '16', size: '720x1280', async: false }));
  assertVideo(v, { status: 'completed', model: 'sora-2-pro', seconds: '15', size: '720x1280', prompt });
  assert.equal(body.orientation, 'portrait');
  assert.equal(body.n_frames, 450);
});

test('modes: Prefer: respond-async, "async": true, and the videos_default_mode setting', async () => {
  let r = await post('/v1/videos', { prompt: tag('prefer'), model: 'sora-video-portrait-10s' }, { Prefer: 'respond-async' });
  assert.equal(r.status, 200, r.text);
  assertVideo(r.json, { status: 'queued', model: 'sora-video-portrait-10s', size: '720x1280' });
  await poll(r.json.id);
  r = await post('/v1/videos', { prompt: tag('flag'), model: 'sora-video-10s', async: true });
  assert.equal(r.json.status, 'queued');
  await poll(r.json.id);
  await setConfig({ videos_default_mode: 'async' });
  try {
    r = await post('/v1/videos', { prompt: tag('setting'), model: 'sora-video-15s' });
    assertVideo(r.json, { status: 'queued', seconds: '15' });
    await poll(r.json.id);
    r = await post('/v1/videos', { prompt: tag('setting, sync asked'), model: 'sora-video-15s', async: 'false' });
    assertVideo(r.json, { status: 'completed', seconds: '15' });
  } finally {
    await setConfig({ videos_default_mode: 'sync' });
  }
  const bad = await request(d.base, 'POST', '/api/admin/config', { headers: Object.assign({ 'Content-Type': 'application/json' }, ctx.H), body: JSON.stringify({ videos_default_mode: 'later' }) });
  assert.equal(bad.status, 400);
});

test('new-api flow: multipart create with input_reference, retrieve until completed, content', async () => {
  const prompt = tag('animate this picture');
  const form = new FormData();
  form.append('model', 'sora-2');
  form.append('prompt', prompt);
  form.append('seconds', '12');
  form.append('size', '1792x1024');
  form.append('input_reference', new Blob([png], { type: 'image/png' }), 'ref.png');
  const since = await g.lastSeq(fake);
  const res = await fetch(`${d.base}/v1/videos`, { method: 'POST', headers: AUTH, body: form });
  assert.equal(res.status, 200);
  const v = await res.json();
  assertVideo(v, { status: 'queued', model: 'sora-2', seconds: '10', size: '1792x1024', prompt });
  const done = await poll(v.id);
  const body = g.byPath(await g.genCalls(fake, since), 'POST', '/backend/nf/create')[0].body;
  assert.equal(done.status, 'completed');
  const c = await fetch(`${d.base}/v1/videos/${v.id}/content`, { headers: AUTH });
  assert.equal(c.status, 200);
  assert.ok((await c.arrayBuffer()).byteLength > 0);
  assert.equal(body.orientation, 'landscape');
  assert.equal(body.inpaint_items.length, 1);
  assert.equal(body.inpaint_items[0].kind, 'upload');
});

test('input_reference in JSON: {image_url} with a data URL, and bare base64', async () => {
  const b64 = png.toString('base64');
  for (const ref of [{ image_url: `data:image/png;base64,${b64}` }, b64]) {
    const prompt = tag('json reference');
    const { value: r, body } = await observe(() => post('/v1/videos', { prompt, model: 'sora-video-landscape-10s', input_reference: ref }));
    assert.equal(r.status, 200, r.text);
    assertVideo(r.json, { status: 'completed' });
    assert.equal(body.inpaint_items.length, 1);
  }
});

test('style_id reaches the upstream', async () => {
  const prompt = tag('styled');
  const { value: r, body } = await observe(() => post('/v1/videos', { prompt, model: 'sora-video-10s', style_id: 'Anime' }));
  assert.equal(r.status, 200, r.text);
  assert.equal(body.style_id, 'anime');
});

test('videos.downloadContent: from the upstream (relayed), and from the cache with Range', async () => {
  const v = await client.videos.create({ prompt: tag('download me'), model: 'sora-video-10s' });
  const resp = await client.videos.downloadContent(v.id);
  const bytes = Buffer.from(await resp.arrayBuffer());
  assert.ok(bytes.length > 0);
  // Relayed, not redirected (videos-content.test.js has the details).
  const raw = await request(d.base, 'GET', `/v1/videos/${v.id}/content`, { headers: AUTH });
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.location, undefined);
  assert.deepEqual(raw.body, Buffer.from(await (await fetch(v.data[0].url)).arrayBuffer()));
  assert.deepEqual(raw.body, bytes);
  await setCache(true);
  try {
    const c = await client.videos.create({ prompt: tag('cache me'), model: 'sora-video-10s' });
    assert.match(c.data[0].url, /\/tmp\/[A-Za-z0-9_-]+\.mp4$/);
    assert.ok(Number.isInteger(c.expires_at) && c.expires_at > c.completed_at);
    const whole = Buffer.from(await (await client.videos.downloadContent(c.id)).arrayBuffer());
    assert.ok(whole.length > 4);
    const part = await fetch(`${d.base}/v1/videos/${c.id}/content`, { headers: Object.assign({ Range: 'bytes=1-3' }, AUTH) });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1-3/${whole.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(1, 4));
    // Deleting it removes the cached file too.
    assert.equal((await client.videos.delete(c.id)).deleted, true);
    assert.equal((await fetch(c.data[0].url)).status, 404);
  } finally {
    await setCache(false);
  }
});

test('content before completion: 404 in the envelope; unknown variant 400', async () => {
  const v = await client.videos.create({ prompt: tag('#stall never done'), model: 'sora-2' });
  const r = await get(`/v1/videos/${v.id}/content`);
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'video_not_ready');
  const bad = await get(`/v1/videos/${v.id}/content?variant=poster`);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'variant');
  // A running job cannot be deleted (the official error).
  await assert.rejects(client.videos.delete(v.id), (e) => e.status === 400 && e.error.code === 'video_not_finished');
  assert.equal((await client.videos.retrieve(v.id)).id, v.id);
});

test('videos.delete: completed → video.deleted, then 404', async () => {
  const v = await client.videos.create({ prompt: tag('delete me'), model: 'sora-video-10s' });
  const del = await client.videos.delete(v.id);
  assert.deepEqual(del, { id: v.id, object: 'video.deleted', deleted: true });
  await assert.rejects(client.videos.retrieve(v.id), (e) => e.status === 404 && e.error.code === 'not_found');
  const again = await request(d.base, 'DELETE', `/v1/videos/${v.id}`, { headers: AUTH });
  assert.equal(again.status, 404);
  assert.equal((await get('/v1/videos/job_000000000000000000000000')).status, 404);
  assert.equal((await get('/v1/videos/not-an-id')).status, 404);
});

test('a failed job: status failed with error {code, message}', async () => {
  const v = await client.videos.create({ prompt: tag('#fail broken'), model: 'sora-2' });
  const done = await poll(v.id);
  assert.equal(done.status, 'failed');
  assert.equal(typeof done.error.code, 'string');
  assert.equal(typeof done.error.message, 'string');
  assert.deepEqual(done.data, []);
});

test('videos.list: paging with after/limit/order, has_more, first_id/last_id', async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await client.videos.create({ prompt: tag('list me'), model: 'sora-video-10s' })).id);
  let r = await get('/v1/videos?limit=2');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'list');
  assert.deepEqual(r.json.data.map((v) => v.id), [ids[2], ids[1]]);
  assert.equal(r.json.first_id, ids[2]);
  assert.equal(r.json.last_id, ids[1]);
  assert.equal(r.json.has_more, true);
  r = await get(`/v1/videos?limit=1&after=${ids[1]}`);
  assert.deepEqual(r.json.data.map((v) => v.id), [ids[0]]);
  r = await get(`/v1/videos?order=asc&limit=100&after=${ids[0]}`);
  assert.deepEqual(r.json.data.map((v) => v.id), [ids[1], ids[2]]);
  assert.equal(r.json.has_more, false);
  // The client's cursor page walks every video, newest first.
  const seen = [];
  for await (const v of client.videos.list({ limit: 2 })) seen.push(v.id);
  assert.deepEqual(seen.slice(0, 3), [ids[2], ids[1], ids[0]]);
  assert.equal(new Set(seen).size, seen.length);
  // Image jobs are not videos.
  await client.images.generate({ prompt: tag('an image'), model: 'sora-image' });
  r = await get('/v1/videos?limit=100');
  assert.ok(r.json.data.every((v) => v.object === 'video' && v.id !== undefined && /^sora/.test(v.model)));
  for (const [q, param] of [['limit=0', 'limit'], ['limit=101', 'limit'], ['order=up', 'order'], ['after=x', 'after']]) {
    const b = await get(`/v1/videos?${q}`);
    assert.equal(b.status, 400, q);
    assert.equal(b.json.error.param, param);
  }
});

test('bad input: 400 with param', async () => {
  const cases = [
    [{ model: 'sora-2' }, 'prompt'],
    [{ prompt: 'x', model: 'sora-3' }, 'model'],
    [{ prompt: 'x', model: 'sora-image' }, 'model'],
    [{ prompt: 'x', model: 'sora-2', size: '640x480' }, 'size'],
    [{ prompt: 'x', model: 'sora-2', seconds: '7' }, 'seconds'],
    [{ prompt: 'x', model: 'sora-2', seconds: 5 }, 'seconds'],
    [{ prompt: 'x', model: 'sora-2', input_reference: 'not base64 !!' }, 'input_reference'],
    [{ prompt: 'x', model: 'sora-2', input_reference: { file_id: 'file_1' } }, 'input_reference'],
    [{ prompt: 'x', model: 'sora-2', style_id: 'a b' }, 'style_id'],
    [{ prompt: 'x', model: 'sora-2', remix_target_id: 'nope' }, 'remix_target_id'],
    [{ prompt: 'x', model: 'sora-2', async: 'maybe' }, 'async'],
  ];
  for (const [body, param] of cases) {
    const r = await post('/v1/videos', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.param, param, JSON.stringify(body));
    assert.equal(r.json.error.type, 'invalid_request_error');
  }
  await assert.rejects(client.videos.create({ prompt: 'x', model: 'sora-2', size: '1x1' }), (e) => e.status === 400 && e.error.param === 'size');
  const noauth = await request(d.base, 'GET', '/v1/videos', {});
  assert.equal(noauth.status, 401);
});

// Runs `fn`; returns its value, the publish call and the nf/create body.
async function observeRemix(fn) {
  const since = await g.lastSeq(fake);
  const value = await fn();
  // An async answer comes once the job's row is committed, before its
  // create call: wait for that call.
  const calls = value.status === 200
    ? await waitFor(async () => {
      const c = await g.genCalls(fake, since);
      return g.byPath(c, 'POST', '/backend/nf/create').length > 0 ? c : null;
    }, { what: 'the remix create call' })
    : await g.genCalls(fake, since);
  const publish = g.byPath(calls, 'POST', '/backend/project_y/post')[0];
  const create = g.byPath(calls, 'POST', '/backend/nf/create')[0];
  return { value, publish: publish && publish.body, body: create && create.body };
}

// The fake's post of that id and the remix tasks naming it.
async function fakePostAndTasks(postId) {
  const st = await g.fakeCall(fake, 'GET', '/__fake/state');
  return {
    post: st.posts.find((x) => x.id === postId),
    remixes: st.tasks.filter((t) => t.kind === 'remix' && t.remix_target_id === postId),
  };
}

test('videos.remix, sync: through a post of the source draft; remixed_from_video_id kept', async () => {
  const src = await client.videos.create({ prompt: tag('a red balloon'), model: 'sora-video-10s' });
  assert.equal(src.status, 'completed');
  const prompt = tag('make it blue');
  const { value: v, publish, body } = await observeRemix(() => client.videos.remix(src.id, { prompt }));
  assertVideo(v, { status: 'completed', model: 'sora-video-10s', seconds: '10', prompt, remixedFrom: src.id });
  assert.notEqual(v.id, src.id);
  assert.ok(publish, 'the draft was published');
  assert.equal(publish.attachments_to_create[0].kind, 'sora');
  assert.match(body.remix_target_id, /^s_[0-9a-f]{32}$/);
  const seen = await fakePostAndTasks(body.remix_target_id);
  assert.ok(seen.post, 'the fake holds the post remixed');
  assert.equal(seen.post.generation_id, publish.attachments_to_create[0].generation_id);
  assert.equal(seen.remixes.length, 1);
  // Retrieve and list say the same.
  const again = await client.videos.retrieve(v.id);
  assertVideo(again, { status: 'completed', prompt, remixedFrom: src.id });
  const list = await get('/v1/videos?limit=5');
  assert.equal(list.json.data.find((x) => x.id === v.id).remixed_from_video_id, src.id);
  assert.equal(list.json.data.find((x) => x.id === src.id).remixed_from_video_id, null);
});

test('remix, async (sora-2 source): queued at once, then completed; the fake got a remix task', async () => {
  const src = await client.videos.create({ prompt: tag('a paper boat'), model: 'sora-2', size: '1280x720' });
  await poll(src.id);
  const prompt = tag('at night');
  const r = await observeRemix(() => post(`/v1/videos/${src.id}/remix`, { prompt }));
  assert.equal(r.value.status, 200, r.value.text);
  assertVideo(r.value.json, { status: 'queued', model: 'sora-2', size: '1280x720', prompt, remixedFrom: src.id });
  assert.match(r.body.remix_target_id, /^s_[0-9a-f]{32}$/);
  const done = await poll(r.value.json.id);
  assertVideo(done, { status: 'completed', model: 'sora-2', size: '1280x720', prompt, remixedFrom: src.id });
  const seen = await fakePostAndTasks(r.body.remix_target_id);
  assert.equal(seen.post.generation_id, r.publish.attachments_to_create[0].generation_id);
  assert.equal(seen.remixes.length, 1);
  // "async": false overrides the model.
  const s = await post(`/v1/videos/${src.id}/remix`, { prompt: tag('sync now'), async: false });
  assert.equal(s.status, 200, s.text);
  assert.equal(s.json.status, 'completed');
  assert.equal(s.json.remixed_from_video_id, src.id);
});

test('remix errors: unknown id 404, not completed 400, missing prompt 400', async () => {
  await assert.rejects(client.videos.remix('job_000000000000000000000000', { prompt: 'x' }), (e) => e.status === 404 && e.error.code === 'not_found');
  let r = await post('/v1/videos/nope/remix', { prompt: 'x' });
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.type, 'invalid_request_error');
  const running = await client.videos.create({ prompt: tag('#slow a slow one'), model: 'sora-2' });
  await assert.rejects(client.videos.remix(running.id, { prompt: 'x' }), (e) => e.status === 400 && e.error.code === 'video_not_finished');
  await poll(running.id);
  for (const body of [{}, { prompt: '' }, { prompt: 3 }]) {
    r = await post(`/v1/videos/${running.id}/remix`, body);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.param, 'prompt');
  }
  r = await post(`/v1/videos/${running.id}/remix`, { prompt: 'x', async: 'maybe' });
  assert.equal(r.json.error.param, 'async');
  r = await post(`/v1/videos/${running.id}/other`, { prompt: 'x' });
  assert.equal(r.status, 404);
});
