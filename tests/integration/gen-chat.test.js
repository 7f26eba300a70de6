'use strict';
// Generation through POST /v1/chat/completions (docs/generation.md): every
// mode streamed and not, the exact chunk sequence, the upstream calls the
// fake records, the official client, per-token queueing, a client that
// leaves, coalesced polling and the records a job leaves behind.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { request, waitFor, sleep, AUTH } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { S, json, user } = g;
let ctx;
let fake;
let d;
let main; // the token every mode test runs on
let png;
let pngB64;
let nonce = 0;
const REMIX_ID = 's_68e3a06dcd888191b150971da152c1f5'; // README example 4
const SEEDED_POST = 's_aa11bb22cc33dd44ee55ff6677889900';
const tag = (s) => `${s} [t${++nonce}]`;

// The official client (package.json; installed by scripts/install-deps).
const OpenAI = require('openai');

before(async () => {
  ctx = await g.startGenPool({ workers: 1 });
  ({ fake, d } = ctx);
  main = await g.addToken(ctx, { video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
  png = await g.pngBytes(fake);
  pngB64 = png.toString('base64');
  const post = await g.fakeCall(fake, 'POST', '/__fake/posts', { username: 'happyremixer', id: REMIX_ID });
  assert.equal(post.id, REMIX_ID);
});
after(() => stopPool(ctx));

const state = () => g.fakeCall(fake, 'GET', '/__fake/state');

// One generation; returns what the client got, the upstream calls and
// the fake's view of the task(s) it created.
async function run(body, stream) {
  const known = new Set((await state()).tasks.map((t) => t.id));
  const knownUploads = new Set((await state()).uploads.map((u) => u.id));
  const since = await g.lastSeq(fake);
  const r = await g.chat(d, Object.assign({}, body, { stream }));
  const calls = await g.genCalls(fake, since);
  const st = await state();
  const tasks = st.tasks.filter((t) => !known.has(t.id));
  const uploads = st.uploads.filter((u) => !knownUploads.has(u.id));
  let s = null;
  let content;
  if (stream) {
    s = g.parseStream(r);
    assert.equal(s.error, undefined, s.error && JSON.stringify(s.error));
    content = s.content;
    assert.doesNotMatch(r.text, /\\u0026/);
  } else {
    content = g.parseCompletion(r);
  }
  assert.equal(tasks.length, 1, `one upstream task: ${tasks.map((t) => t.id)}`);
  return { r, s, content, calls, task: tasks[0], uploads };
}

// Every generation POST carries the sentinel and the token's AT.
function checkCalls(calls, at) {
  for (const e of calls) {
    if (e.path.startsWith('/backend/')) {
      assert.equal(e.headers.authorization, `Bearer ${at}`, `${e.method} ${e.path}`);
      assert.equal(e.status, 200, `${e.method} ${e.path} answered ${e.status}`);
    }
    if (/^\/backend\/(video_gen|nf\/create|nf\/create\/storyboard|project_y\/post)$/.test(e.path)) {
      assert.ok(typeof e.headers['openai-sentinel-token'] === 'string'
        && e.headers['openai-sentinel-token'].trim().length > 0, `sentinel on ${e.path}`);
    }
  }
}

function checkUpload(e) {
  const file = e.parts.find((p) => p.name === 'file');
  assert.ok(file, 'a file part');
  assert.equal(file.filename, 'image.png');
  assert.equal(file.content_type, 'image/png');
  assert.equal(file.sniffed, 'png');
  assert.equal(file.sha256, g.sha256(png));
  const name = e.parts.find((p) => p.name === 'file_name');
  assert.equal(name && name.value, 'image.png');
}

const pick = (o, keys) => Object.fromEntries(keys.map((k) => [k, o[k]]));
const IMAGE_POLLS = ['POST /backend/video_gen', 'GET /backend/v2/recent_tasks', 'GET /backend/v2/recent_tasks'];
const VIDEO_POLLS = ['GET /backend/nf/pending', 'GET /backend/nf/pending', 'GET /backend/nf/pending',
  'GET /backend/nf/pending', 'GET /backend/project_y/profile/drafts'];

function checkImage(res, { prompt, width, height, upload = false, pre = [] }) {
  const { calls, task } = res;
  const url = `${fake.url}${task.generations[0].path}`;
  assert.deepEqual(res.content, g.imageResult([url]));
  const names = g.callNames(calls);
  assert.deepEqual(names.filter((n) => n.includes(' /backend/')),
    (upload ? ['POST /backend/uploads'] : []).concat(IMAGE_POLLS));
  const gen = g.byPath(calls, 'POST', '/backend/video_gen')[0];
  const items = upload ? [{ type: 'image', frame_index: 0, upload_media_id: res.uploads[0].id }] : [];
  assert.deepEqual(pick(gen.body, ['type', 'operation', 'prompt', 'width', 'height', 'n_variants', 'n_frames', 'inpaint_items']),
    { type: 'image_gen', operation: upload ? 'remix' : 'simple_compose', prompt, width, height, n_variants: 1, n_frames: 1,
      inpaint_items: items });
  for (const e of g.byPath(calls, 'GET', '/backend/v2/recent_tasks')) assert.equal(e.query.limit, '20');
  if (upload) checkUpload(g.byPath(calls, 'POST', '/backend/uploads')[0]);
  checkCalls(calls, main.at);
  if (res.s) {
    g.assertShape(res.s.rcs, g.imageSteps(upload ? [...pre, S.uploading, S.uploaded] : pre));
    assert.equal(res.s.rcs[res.s.rcs.length - 3].details.task_id, task.id);
  }
}

function checkVideo(res, { path = '/backend/nf/create', body, pre = [], upload = false }) {
  const { calls, task } = res;
  assert.ok(task.draft && task.draft.id, 'the task was drafted');
  assert.deepEqual(res.content, g.videoResult(`${fake.url}/media/vid/${task.draft.id}.mp4`));
  const names = g.callNames(calls).filter((n) => n.includes(' /backend/'));
  assert.deepEqual(names, (upload ? ['POST /backend/uploads'] : []).concat([`POST ${path}`], VIDEO_POLLS));
  const create = g.byPath(calls, 'POST', path)[0];
  assert.deepEqual(pick(create.body, Object.keys(body)), body);
  assert.equal(typeof create.body.model, 'string');
  for (const e of g.byPath(calls, 'GET', '/backend/project_y/profile/drafts')) assert.equal(e.query.limit, '50');
  checkCalls(calls, main.at);
  if (upload) {
    checkUpload(g.byPath(calls, 'POST', '/backend/uploads')[0]);
    assert.deepEqual(create.body.inpaint_items, [{ kind: 'upload', upload_id: res.uploads[0].id }]);
  }
  if (res.s) {
    g.assertShape(res.s.rcs, g.videoSteps(upload ? [...pre, S.uploading, S.uploaded] : pre));
    assert.equal(res.s.rcs.find((x) => x.message === 'Generation task submitted').details.task_id, task.id);
  }
}

const STORYBOARD = '[5.0s]猫猫从飞机上跳伞 [5.0s]猫猫降落 [10.0s]猫猫在田野奔跑';
const SHOTS = 'Shot 1:\nduration: 5.0sec\nScene: 猫猫从飞机上跳伞\n\nShot 2:\nduration: 5.0sec\nScene: 猫猫降落\n\n'
  + 'Shot 3:\nduration: 10.0sec\nScene: 猫猫在田野奔跑';

const MODES = [
  ['text to image (README example 1)', async (stream) => {
    const prompt = tag('一只可爱的小猫');
    const res = await run({ model: 'sora-image', messages: user(prompt) }, stream);
    checkImage(res, { prompt, width: 360, height: 360 });
  }],
  ['text to image, landscape and portrait', async (stream) => {
    for (const [model, width, height] of [['sora-image-landscape', 540, 360], ['sora-image-portrait', 360, 540]]) {
      const prompt = tag('a lighthouse');
      const res = await run({ model, messages: user(prompt) }, stream);
      checkImage(res, { prompt, width, height });
    }
  }],
  ['image to image from a data URL', async (stream) => {
    const prompt = tag('make it blue');
    const res = await run({ model: 'sora-image', messages: user([
      { type: 'text', text: prompt },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${pngB64}` } },
    ]) }, stream);
    checkImage(res, { prompt, width: 360, height: 360, upload: true });
  }],
  ['image to image from an http URL the gateway downloads', async (stream) => {
    const prompt = tag('make it red');
    const res = await run({ model: 'sora-image-landscape', messages: user([
      { type: 'text', text: prompt },
      { type: 'image_url', image_url: { url: `${fake.url}/media/input.png` } },
    ]) }, stream);
    checkImage(res, { prompt, width: 540, height: 360, upload: true });
    const names = g.callNames(res.calls);
    const dl = names.indexOf('GET /media/input.png');
    assert.ok(dl >= 0 && dl < names.indexOf('POST /backend/uploads'), names.join(', '));
    assert.equal(res.calls[dl].headers.authorization, undefined, 'the AT is not sent to the image host');
  }],
  ['text to video with a style (README example 2)', async (stream) => {
    const prompt = tag('一只猫在弹钢琴');
    const res = await run({ model: 'sora-video-landscape-10s', messages: user(prompt), style_id: 'anime' }, stream);
    checkVideo(res, { body: { kind: 'video', prompt, orientation: 'landscape', n_frames: 300, size: 'small',
      style_id: 'anime', inpaint_items: [] } });
  }],
  ['text to video, portrait 15 s, style lower-cased', async (stream) => {
    const prompt = tag('a dog on a skateboard');
    const res = await run({ model: 'sora-video-portrait-15s', messages: user(prompt), style_id: 'Retro' }, stream);
    checkVideo(res, { body: { kind: 'video', prompt, orientation: 'portrait', n_frames: 450, size: 'small',
      style_id: 'retro', inpaint_items: [] } });
  }],
  ['image to video from a data URL part (README example 3)', async (stream) => {
    const prompt = tag('让图片动起来');
    const res = await run({ model: 'sora-video-landscape-10s', messages: user([
      { type: 'text', text: prompt },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${pngB64}` } },
    ]) }, stream);
    checkVideo(res, { upload: true, body: { kind: 'video', prompt, orientation: 'landscape', n_frames: 300 } });
  }],
  ['image to video from the top-level image field', async (stream) => {
    const prompt = tag('the picture comes alive');
    const res = await run({ model: 'sora-video-portrait-10s', messages: user(prompt), image: pngB64 }, stream);
    checkVideo(res, { upload: true, body: { kind: 'video', prompt, orientation: 'portrait', n_frames: 300 } });
  }],
  ['remix from a share link (README example 4)', async (stream) => {
    const text = tag('改成水墨画风格');
    const res = await run({ model: 'sora-video-landscape-10s',
      messages: user(`https://sora.chatgpt.com/p/${REMIX_ID} ${text}`) }, stream);
    checkVideo(res, { pre: [S.remix(REMIX_ID)], body: { kind: 'video', prompt: text, remix_target_id: REMIX_ID,
      inpaint_items: [], orientation: 'landscape', n_frames: 300 } });
    assert.equal(res.task.remix_target_id, REMIX_ID);
  }],
  ['remix from a bare share id', async (stream) => {
    const text = tag('make it rain');
    const res = await run({ model: 'sora-video-portrait-15s', messages: user(`${SEEDED_POST}   ${text}`) }, stream);
    checkVideo(res, { pre: [S.remix(SEEDED_POST)], body: { kind: 'video', prompt: text, remix_target_id: SEEDED_POST,
      orientation: 'portrait', n_frames: 450 } });
  }],
  ['remix from the remix_target_id field', async (stream) => {
    const text = tag('make it snow');
    const res = await run({ model: 'sora-video-landscape-15s', messages: user(text), remix_target_id: SEEDED_POST }, stream);
    checkVideo(res, { pre: [S.remix(SEEDED_POST)], body: { kind: 'video', prompt: text, remix_target_id: SEEDED_POST,
      orientation: 'landscape', n_frames: 450 } });
  }],
  ['storyboard (README example 5)', async (stream) => {
    const res = await run({ model: 'sora-video-landscape-10s', messages: user(STORYBOARD) }, stream);
    checkVideo(res, { path: '/backend/nf/create/storyboard', pre: [S.storyboard(3)], body: { kind: 'video',
      prompt: SHOTS, title: 'Draft your video', orientation: 'landscape', n_frames: 300, storyboard_id: null,
      remix_target_id: null, inpaint_items: [] } });
    assert.deepEqual(res.task.storyboard.shots, [
      { index: 1, duration_s: 5, scene: '猫猫从飞机上跳伞' },
      { index: 2, duration_s: 5, scene: '猫猫降落' },
      { index: 3, duration_s: 10, scene: '猫猫在田野奔跑' },
    ]);
  }],
];

for (const stream of [true, false]) {
  for (const [name, fn] of MODES) {
    test(`${name} (${stream ? 'stream' : 'stream: false'})`, () => fn(stream));
  }
}

test('reasoning_content carries the README fields, timestamp included', async () => {
  const r = await g.chat(d, { model: 'sora-image', messages: user(tag('a red fox')), stream: true });
  const s = g.parseStream(r);
  for (const c of s.chunks.slice(0, -1)) {
    const rc = c.choices[0].delta.reasoning_content;
    assert.ok(Number.isInteger(rc.timestamp), `timestamp in ${JSON.stringify(rc)}`);
    assert.ok(Math.abs(rc.timestamp - Date.now() / 1000) < 60);
  }
});

test('progress chunks come only when the percentage changes', async () => {
  const v = await run({ model: 'sora-video-10s', messages: user(tag('#slow video')) }, true);
  const i = await run({ model: 'sora-image', messages: user(tag('#slow image')) }, true);
  g.assertShape(v.s.rcs, [S.started, S.submitted, S.video(10), S.video(50), S.video(90), S.videoDone]);
  g.assertShape(i.s.rcs, [S.started, S.submitted, S.image(10), S.image(60), S.imageDone]);
});

test('bad input is a 400 in the OpenAI envelope before any stream', async () => {
  let r = await g.chat(d, { model: 'sora-nope', messages: user('x'), stream: true });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'model');
  assert.equal(r.json.error.type, 'invalid_request_error');
  // A character's video that is no MP4, QuickTime or WebM file.
  r = await g.chat(d, { model: 'sora-video-10s', messages: user('x'), video: Buffer.from('not a video at all').toString('base64'), stream: true });
  g.assertHttpError(r, 400, 'invalid_video');
  assert.equal(r.json.error.param, 'video');
  r = await g.chat(d, { model: 'sora-image', messages: user('   '), stream: true });
  assert.equal(r.status, 400);
  // An image that does not decode is the client's error, not a 500.
  r = await g.chat(d, { model: 'sora-image', stream: false, messages: [{ role: 'user', content: [
    { type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,@@@@' } }] }] });
  assert.ok(r.status === 400, `${r.status} ${r.text}`);
  assert.equal(r.json.error.type, 'invalid_request_error');
  r = await request(d.base, 'POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json' },
    body: json({ model: 'sora-image', messages: user('x') }) });
  assert.equal(r.status, 401);
});

test('the official openai client streams and waits for results', async () => {
  const Client = OpenAI.OpenAI;
  const client = new Client({ apiKey: AUTH.Authorization.slice(7), baseURL: `${d.base}/v1`, maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'sora-image', messages: user(tag('a cat')), stream: true });
  let content = '';
  let n = 0;
  let finish = null;
  for await (const chunk of stream) {
    n++;
    if (chunk.choices[0].delta.content) content += chunk.choices[0].delta.content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.ok(n >= 4);
  assert.equal(finish, 'STOP');
  assert.equal(JSON.parse(content).type, 'image');
  const done = await client.chat.completions.create({ model: 'sora-video-10s', messages: user(tag('a cat on a boat')) });
  assert.equal(done.choices[0].finish_reason, 'stop');
  const v = JSON.parse(done.choices[0].message.content);
  assert.equal(v.type, 'video');
  assert.match(v.url, /\/media\/vid\/gen_\w+\.mp4$/);
  const vs = await client.chat.completions.create({ model: 'sora-video-10s', messages: user(tag('a cat on a bike')), stream: true });
  content = '';
  for await (const chunk of vs) content += chunk.choices[0].delta.content || '';
  assert.equal(JSON.parse(content).type, 'video');
  const img = await client.chat.completions.create({ model: 'sora-image-portrait', messages: user(tag('a cat on a bus')) });
  assert.equal(JSON.parse(img.choices[0].message.content).count, 1);
});

test('records: task row, request log and token counters', async () => {
  const before = await g.tokenById(ctx, main.id);
  const prompt = tag('record me');
  const res = await run({ model: 'sora-video-10s', messages: user(prompt) }, true);
  const img = await run({ model: 'sora-image', messages: user(tag('record me too')) }, false);
  const row = await waitFor(() => {
    const out = d.sqlite(`SELECT json_object('job_id', job_id, 'status', status, 'upstream_task_id', upstream_task_id,
      'token_id', token_id, 'model', model, 'mode', mode, 'prompt', prompt, 'progress', progress, 'result_urls', result_urls,
      'error_message', error_message, 'completed_at', completed_at, 'duration_ms', duration_ms)
      FROM tasks WHERE upstream_task_id = '${res.task.id}'`);
    return out && JSON.parse(out).status === 'succeeded' ? JSON.parse(out) : null;
  }, { what: 'the succeeded task row' });
  assert.match(row.job_id, /^job_[0-9a-f]{24}$/);
  assert.equal(row.token_id, main.id);
  assert.equal(row.model, 'sora-video-10s');
  assert.equal(row.prompt, prompt);
  assert.deepEqual(JSON.parse(row.result_urls), [res.content.url]);
  assert.equal(row.error_message, null);
  assert.ok(row.completed_at > 0);
  assert.ok(row.duration_ms >= 0);
  assert.equal(row.progress, 100); // percent, as in the stream
  const imgRow = await waitFor(() => {
    const out = d.sqlite(`SELECT status || '|' || result_urls FROM tasks WHERE upstream_task_id = '${img.task.id}'`);
    return out.startsWith('succeeded|') ? out : null;
  }, { what: 'the image task row' });
  assert.deepEqual(JSON.parse(imgRow.slice(10)), img.content.urls);
  const logs = await waitFor(() => {
    const out = d.sqlite(`SELECT operation || '|' || status_code || '|' || token_id || '|' || model FROM request_logs
      WHERE operation IN ('generate_image', 'generate_video') ORDER BY id DESC LIMIT 2`);
    return out.split('\n').length === 2 ? out.split('\n') : null;
  }, { what: 'two request_logs rows' });
  assert.deepEqual(logs.sort(), [`generate_image|200|${main.id}|sora-image`, `generate_video|200|${main.id}|sora-video-10s`]);
  const t = await waitFor(async () => {
    const x = await g.tokenById(ctx, main.id);
    return x.video_count === before.video_count + 1 && x.image_count === before.image_count + 1 ? x : null;
  }, { what: 'the token counters' });
  assert.equal(t.error_count, before.error_count);
  assert.equal(t.use_count, before.use_count + 2, 'each generation counts as a use');
  assert.equal(t.state, 'active');
  // The admin listing shows the same row.
  const listed = (await request(d.base, 'GET', '/api/tasks', { headers: ctx.H })).json.tasks.find((x) => x.job_id === row.job_id);
  assert.equal(listed.status, 'succeeded');
  assert.deepEqual(listed.result_urls, [res.content.url]);
});

// Sends a chat request and drops the connection once `marker` arrived
// (or after `ms` when marker is a number).
function leaveAfter(body, marker) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${d.base}/v1/chat/completions`, { method: 'POST',
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH) }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
        if (typeof marker === 'string' && text.includes(marker)) {
          req.destroy();
          resolve();
        }
      });
      res.on('end', () => reject(new Error(`the answer ended: ${text}`)));
    });
    req.on('error', () => {});
    req.end(json(body));
    if (typeof marker === 'number') setTimeout(() => { req.destroy(); resolve(); }, marker);
  });
}

// Runs fn with only the given tokens enabled; `main` comes back after.
async function withOnly(ids, fn) {
  const post = (id, what) => request(d.base, 'POST', `/api/tokens/${id}/${what}`, { headers: ctx.H });
  assert.equal((await post(main.id, 'disable')).status, 200);
  try {
    return await fn();
  } finally {
    await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases === 0, { what: 'no lease left' });
    for (const id of ids) await request(d.base, 'DELETE', `/api/tokens/${id}`, { headers: ctx.H });
    assert.equal((await post(main.id, 'enable')).status, 200);
  }
}

test('a token taking one video at a time runs two jobs one after the other', async () => {
  const one = await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null, max_concurrent: 1 });
  await withOnly([one.id], async () => {
    const rejected = (await g.fakeStats(fake)).counters.rejected.concurrency;
    const since = await g.lastSeq(fake);
    const both = Promise.all([tag('first of two'), tag('second of two')].map((p) =>
      g.chat(d, { model: 'sora-video-10s', messages: user(p), stream: true })));
    // A third job, queued behind them, whose client leaves while it waits.
    const gone = tag('third, leaves while queued');
    await sleep(30);
    await leaveAfter({ model: 'sora-video-10s', messages: user(gone), stream: true }, 'Initializing generation request...');
    const [a, b] = await both;
    await waitFor(() => d.sqlite(`SELECT status FROM tasks WHERE prompt = '${gone}'`) === 'cancelled' || null,
      { what: 'the queued job cancelled' });
    for (const r of [a, b]) {
      const s = g.parseStream(r);
      assert.equal(s.error, undefined, JSON.stringify(s.error));
      assert.equal(s.content.type, 'video');
    }
    const calls = await g.genCalls(fake, since);
    const creates = g.byPath(calls, 'POST', '/backend/nf/create');
    assert.equal(creates.length, 2);
    assert.ok(creates.every((e) => e.status === 200 && e.token === one.at));
    const firstDraft = g.byPath(calls, 'GET', '/backend/project_y/profile/drafts')[0];
    assert.ok(firstDraft.seq < creates[1].seq, 'the second job is submitted after the first one finished');
    assert.equal((await g.fakeStats(fake)).counters.rejected.concurrency, rejected, 'never two running at Sora');
  });
});

test('a client that leaves cancels the job: lease released, polling stops, row cancelled', async () => {
  const solo = await g.addToken(ctx, { video_concurrency: 2 }, { remaining: null, max_concurrent: 0 });
  await withOnly([solo.id], async () => {
    const prompt = tag('#stall a client that leaves');
    await leaveAfter({ model: 'sora-video-10s', messages: user(prompt), stream: true }, 'Video generation progress: 30%');
    await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases === 0, { what: 'no lease left' });
    const status = await waitFor(() => d.sqlite(`SELECT status FROM tasks WHERE prompt = '${prompt}'`) === 'cancelled'
      || null, { what: 'the task row cancelled' });
    assert.ok(status);
    await waitFor(() => d.sqlite(`SELECT count(*) FROM request_logs WHERE status_code = 499`) !== '0',
      { what: 'a request log with 499' });
    // Polling for the task stops.
    await sleep(200);
    const n1 = (await fake.journal('?route=GET%20/backend/nf/pending')).entries.filter((e) => e.token === solo.at).length;
    await sleep(400);
    const n2 = (await fake.journal('?route=GET%20/backend/nf/pending')).entries.filter((e) => e.token === solo.at).length;
    assert.equal(n2, n1, 'no more polls for the cancelled task');
    // The same without streaming.
    const quiet = tag('#stall a client that leaves quietly');
    await leaveAfter({ model: 'sora-image', messages: user(quiet) }, 300);
    await waitFor(() => d.sqlite(`SELECT status FROM tasks WHERE prompt = '${quiet}'`) === 'cancelled' || null,
      { what: 'the non-streamed job cancelled' });
    await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases === 0, { what: 'no lease left' });
    const t = await g.tokenById(ctx, solo.id);
    assert.equal(t.error_count, 0);
    assert.equal(t.video_count, 0);
    assert.equal(t.image_count, 0);
  });
});

test('fifty jobs on one token share one poll per round', async () => {
  const many = await g.addToken(ctx, { video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
  await withOnly([many.id], async () => {
    const since = await g.lastSeq(fake);
    const prompts = Array.from({ length: 50 }, (_, i) => tag(`crowd ${i}`));
    const t0 = Date.now();
    const rs = await Promise.all(prompts.map((p) =>
      g.chat(d, { model: 'sora-video-10s', messages: user(p), stream: true }, { timeout: 30000 })));
    const rounds = Math.ceil((Date.now() - t0) / 50) + 1; // poll_interval_ms 50
    const urls = new Set();
    for (const r of rs) {
      const s = g.parseStream(r);
      assert.equal(s.error, undefined, JSON.stringify(s.error));
      urls.add(s.content.url);
    }
    assert.equal(urls.size, 50);
    const calls = await g.genCalls(fake, since);
    assert.equal(g.byPath(calls, 'POST', '/backend/nf/create').length, 50);
    const pending = g.byPath(calls, 'GET', '/backend/nf/pending').length;
    const drafts = g.byPath(calls, 'GET', '/backend/project_y/profile/drafts').length;
    // One read per round at most, however slow the machine; without
    // coalescing it would be 4 per task (200).
    assert.ok(pending >= 4 && pending <= rounds && pending < 50, `${pending} pending reads for 50 tasks in ${rounds} rounds`);
    assert.ok(drafts >= 1 && drafts <= rounds && drafts < 50, `${drafts} drafts reads for 50 tasks in ${rounds} rounds`);
  });
});

test('twenty images on one token share one recent_tasks read per round', async () => {
  const many = await g.addToken(ctx, { image_concurrency: 0 }, { remaining: null });
  await withOnly([many.id], async () => {
    const since = await g.lastSeq(fake);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      g.chat(d, { model: 'sora-image', messages: user(tag(`pictures ${i}`)), stream: true })));
    const urls = new Set();
    for (const r of rs) {
      const s = g.parseStream(r);
      assert.equal(s.error, undefined, JSON.stringify(s.error));
      urls.add(s.content.urls[0]);
    }
    assert.equal(urls.size, 20);
    const reads = g.byPath(await g.genCalls(fake, since), 'GET', '/backend/v2/recent_tasks');
    assert.ok(reads.length >= 2 && reads.length < 20, `${reads.length} recent_tasks reads for 20 tasks`);
    const limits = reads.map((e) => Number(e.query.limit));
    assert.ok(limits.every((n) => n >= 20 && n <= 30), `limits ${limits}`);
    assert.ok(Math.max(...limits) > 20, `limit grows with the tasks: ${limits}`);
  });
});
