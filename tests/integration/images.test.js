'use strict';
// The Images API (docs/images.md): /v1/images/generations and
// /v1/images/edits through the official openai client and raw requests,
// against the fake upstream: url and b64_json answers, n jobs, uploads,
// size to model mapping, bad input and failures.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { request, AUTH } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');
const OpenAI = require('openai');

let ctx;
let fake;
let d;
let client;
let png;
let nonce = 0;
const tag = (s) => `${s} [i${++nonce}]`;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

before(async () => {
  ctx = await g.startGenPool({ workers: 1 });
  ({ fake, d } = ctx);
  await g.addToken(ctx, { image_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
  png = await g.pngBytes(fake);
  client = new OpenAI.OpenAI({ apiKey: AUTH.Authorization.slice(7), baseURL: `${d.base}/v1`, maxRetries: 0 });
});
after(() => stopPool(ctx));

const state = () => g.fakeCall(fake, 'GET', '/__fake/state');

// Runs `fn` and returns its value with the upstream tasks and uploads it created.
async function observe(fn) {
  const st0 = await state();
  const known = new Set(st0.tasks.map((t) => t.id));
  const knownUp = new Set(st0.uploads.map((u) => u.id));
  const value = await fn();
  const st = await state();
  return { value, tasks: st.tasks.filter((t) => !known.has(t.id)), uploads: st.uploads.filter((u) => !knownUp.has(u.id)) };
}

function post(p, body, headers = {}) {
  return request(d.base, 'POST', p, {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH, headers),
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), timeout: 30000,
  });
}

test('images.generate with the official client: a URL and the prompt back', async () => {
  const prompt = tag('a lighthouse');
  const { value: r, tasks } = await observe(() => client.images.generate({ prompt, model: 'sora-image' }));
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.data.length, 1);
  assert.match(r.data[0].url, /^http:\/\/.+\.png$/);
  assert.equal(r.data[0].revised_prompt, prompt);
  assert.equal(tasks.length, 1);
  assert.equal(tasks[0].prompt, prompt);
  const img = Buffer.from(await (await fetch(r.data[0].url)).arrayBuffer());
  assert.deepEqual(img.subarray(0, 8), PNG_MAGIC);
});

test('b64_json: the image bytes, base64', async () => {
  const r = await client.images.generate({ prompt: tag('a fox'), response_format: 'b64_json' });
  assert.equal(r.data.length, 1);
  assert.equal(r.data[0].url, undefined);
  const bytes = Buffer.from(r.data[0].b64_json, 'base64');
  assert.deepEqual(bytes.subarray(0, 8), PNG_MAGIC);
  // With the cache on, the bytes come from the cache file.
  const H = ctx.H;
  let c = await request(d.base, 'POST', '/api/cache/enabled', { headers: Object.assign({ 'Content-Type': 'application/json' }, H), body: JSON.stringify({ enabled: true }) });
  assert.equal(c.status, 200, c.text);
  try {
    const r2 = await client.images.generate({ prompt: tag('a cached fox'), response_format: 'b64_json', n: 2 });
    assert.equal(r2.data.length, 2);
    for (const it of r2.data) assert.deepEqual(Buffer.from(it.b64_json, 'base64').subarray(0, 8), PNG_MAGIC);
  } finally {
    c = await request(d.base, 'POST', '/api/cache/enabled', { headers: Object.assign({ 'Content-Type': 'application/json' }, H), body: JSON.stringify({ enabled: false }) });
    assert.equal(c.status, 200, c.text);
  }
});

test('n=2: two upstream tasks, two URLs', async () => {
  const { value: r, tasks } = await observe(() => client.images.generate({ prompt: tag('two owls'), n: 2 }));
  assert.equal(r.data.length, 2);
  assert.equal(tasks.length, 2);
  assert.notEqual(r.data[0].url, r.data[1].url);
});

test('images.edit uploads the file and runs image to image', async () => {
  const file = await OpenAI.toFile(png, 'input.png', { type: 'image/png' });
  const prompt = tag('make it blue');
  const { value: r, tasks, uploads } = await observe(() => client.images.edit({ image: file, prompt }));
  assert.equal(r.data.length, 1);
  assert.equal(r.data[0].revised_prompt, prompt);
  assert.equal(uploads.length, 1, 'the fake received one upload');
  assert.equal(tasks.length, 1);
  assert.equal(tasks[0].operation, 'remix');
  // Without an image an edit is a 400 naming it.
  const e = await post('/v1/images/edits', { prompt: 'x' });
  assert.equal(g.assertHttpError(e, 400, 'invalid_value').param, 'image');
});

test('a JSON data URL image is uploaded too', async () => {
  const { value: r, uploads } = await observe(() => post('/v1/images/generations',
    { prompt: tag('from a data url'), image: `data:image/png;base64,${png.toString('base64')}` }));
  assert.equal(r.status, 200, r.text);
  assert.equal(uploads.length, 1);
});

test('size picks the orientation when no model is named', async () => {
  const cases = [['1024x1024', 'sora-image'], ['1792x1024', 'sora-image-landscape'], ['1536x1024', 'sora-image-landscape'],
    ['1024x1792', 'sora-image-portrait'], ['1024x1536', 'sora-image-portrait'], ['auto', 'sora-image']];
  const dims = { 'sora-image': [360, 360], 'sora-image-landscape': [540, 360], 'sora-image-portrait': [360, 540] };
  for (const [size, model] of cases) {
    const { value: r, tasks } = await observe(() => post('/v1/images/generations', { prompt: tag(`size ${size}`), size, model: 'dall-e-3' }));
    assert.equal(r.status, 200, r.text);
    assert.equal(tasks.length, 1);
    assert.deepEqual([tasks[0].width, tasks[0].height], dims[model], `${size} -> ${model}`);
  }
  // An explicit sora model wins over size.
  const { tasks } = await observe(() => post('/v1/images/generations', { prompt: tag('explicit'), size: '1024x1024', model: 'sora-image-portrait' }));
  assert.deepEqual([tasks[0].width, tasks[0].height], [360, 540]);
  // Multipart fields map the same way.
  const fd = new FormData();
  fd.append('prompt', tag('form landscape'));
  fd.append('size', '1792x1024');
  const { tasks: t2 } = await observe(() => fetch(`${d.base}/v1/images/generations`, { method: 'POST', headers: AUTH, body: fd }).then((x) => x.json()));
  assert.deepEqual([t2[0].width, t2[0].height], [540, 360]);
});

test('bad input: 400 in the OpenAI envelope with param', async () => {
  const cases = [
    [{ model: 'sora-image' }, 'prompt'],
    [{ prompt: 'x', n: 5 }, 'n'],
    [{ prompt: 'x', n: 0 }, 'n'],
    [{ prompt: 'x', size: '999x999' }, 'size'],
    [{ prompt: 'x', model: 'nope' }, 'model'],
    [{ prompt: 'x', model: 'sora-video-10s' }, 'model'],
    [{ prompt: 'x', response_format: 'jpeg' }, 'response_format'],
    [{ prompt: 'x', image: 'not base64 !!' }, 'image'],
  ];
  for (const [body, param] of cases) {
    const r = await post('/v1/images/generations', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.param, param, r.text);
  }
  // The official client sees the same as a BadRequestError.
  await assert.rejects(client.images.generate({ prompt: 'x', model: 'nope' }),
    (e) => e.status === 400 && e.param === 'model' && e.code === 'model_not_found');
  // Multipart framing: an empty boundary, a body without its close.
  const bad = await post('/v1/images/generations', 'multipart body', { 'Content-Type': 'multipart/form-data; boundary=' });
  assert.equal(g.assertHttpError(bad, 400, 'invalid_multipart').type, 'invalid_request_error');
  const trunc = await post('/v1/images/generations',
    '--abc\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhello\r\n', { 'Content-Type': 'multipart/form-data; boundary=abc' });
  g.assertHttpError(trunc, 400, 'invalid_multipart');
  const mask = await post('/v1/images/edits', { prompt: 'x', image: png.toString('base64'), mask: 'y' });
  assert.equal(g.assertHttpError(mask, 400, 'unsupported_parameter').param, 'mask');
});

test('a content-policy refusal is a 400 content_policy_violation', async () => {
  const r = await post('/v1/images/generations', { prompt: tag('#reject this') });
  const e = g.assertHttpError(r, 400, 'content_policy_violation', 'invalid_request_error');
  assert.match(e.message, /^Content policy violation: /);
  const f = await post('/v1/images/generations', { prompt: tag('#fail this') });
  g.assertHttpError(f, 502, 'generation_failed', 'upstream_error');
});

test('no token: 503 no_available_token', async () => {
  await g.emptyPool(ctx);
  const r = await post('/v1/images/generations', { prompt: tag('nobody home') });
  g.assertHttpError(r, 503, 'no_available_token', 'server_error');
});
