'use strict';
// The recorded stage history of a job (docs/generation.md, "Records"):
// what `GET /api/tasks?job_id=` answers in `stages` is what the job's
// stream showed (stage, status, message, progress), a run of
// generation/processing percentages kept as its latest, each entry
// timed in ms; for an image, a video with the cache and watermark-free
// on, a content-policy refusal and failures; bounded under a long
// `#slow` job; continued by the worker that resumes a job.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { request, waitFor, pidAlive } = require('./lib/daemon');

const { json, user } = g;
let ctx;

before(async () => {
  ctx = await g.startGenPool({ workers: 2, poll: 50, allowedErrors: [/killed by signal 9/] });
  await g.addToken(ctx, { video_concurrency: 3, image_concurrency: 3 }, { remaining: null });
});

after(async () => {
  if (ctx) {
    assert.equal((await ctx.d.stop()).code, 0);
    assert.deepEqual(ctx.d.unexpectedErrors(), []);
    await stopPool(ctx);
  }
});

const admin = (p, body) => request(ctx.d.base, 'POST', p, { headers: ctx.H, body: json(body) });
const q = (s) => s.replace(/'/g, "''");

// The stream's progress events as the history keeps them.
function collapse(rcs) {
  const out = [];
  for (const rc of rcs) {
    const e = { stage: rc.stage, status: rc.status, message: rc.message };
    if (rc.progress !== undefined) e.progress = rc.progress;
    const last = out[out.length - 1];
    if (last && last.stage === 'generation' && last.status === 'processing'
      && e.stage === 'generation' && e.status === 'processing') {
      out[out.length - 1] = e;
    } else {
      out.push(e);
    }
  }
  return out;
}

// The finished row of the job with `prompt`, from the admin API.
async function finishedRow(prompt, timeout = 20000) {
  const job = await waitFor(() => ctx.d.sqlite(`SELECT job_id FROM tasks WHERE prompt = '${q(prompt)}'
    AND status IN ('succeeded', 'failed', 'cancelled')`) || null, { timeout, what: `"${prompt}" finished` });
  // The last record may still be in the master's queue: wait for it.
  return waitFor(async () => {
    const r = await request(ctx.d.base, 'GET', `/api/tasks?job_id=${job}`, { headers: ctx.H });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.tasks.length, 1);
    const row = r.json.tasks[0];
    // The ending record carries the last stages with the status.
    return ['succeeded', 'failed', 'cancelled'].includes(row.status) ? row : null;
  }, { what: `the stages of "${prompt}"` });
}

// Runs a streamed chat job; asserts its recorded stages are its stream's.
async function sameAsStream(body, what) {
  const started = Date.now();
  const s = g.parseStream(await g.chat(ctx.d, Object.assign({ stream: true }, body)));
  const prompt = typeof body.messages[0].content === 'string' ? body.messages[0].content : null;
  const row = await finishedRow(prompt);
  const stages = row.stages;
  assert.ok(Array.isArray(stages), `${what}: stages is a list: ${JSON.stringify(row)}`);
  for (const e of stages) {
    assert.ok(Number.isInteger(e.t) && e.t >= started - 1000 && e.t <= Date.now(), `${what}: t in ms: ${e.t}`);
  }
  for (let i = 1; i < stages.length; i++) assert.ok(stages[i].t >= stages[i - 1].t, `${what}: in time order`);
  const bare = stages.map((e) => { const c = Object.assign({}, e); delete c.t; return c; });
  assert.deepEqual(bare, collapse(s.rcs), `${what}: the stream's stages`);
  // The list of jobs stays light: no stages there.
  const list = await request(ctx.d.base, 'GET', '/api/tasks?limit=5', { headers: ctx.H });
  assert.equal(list.json.tasks[0].stages, undefined);
  return { s, row, stages };
}

test('an image: the stages recorded are the stream\'s', async () => {
  const { stages, row } = await sameAsStream({ model: 'sora-image', messages: user(`stages of a cat [${Date.now()}]`) }, 'image');
  assert.equal(row.status, 'succeeded');
  assert.deepEqual(stages.map((e) => `${e.stage}/${e.status}`),
    ['generation/started', 'generation/processing', 'generation/completed']);
  assert.ok(stages[1].progress > 0, `the latest percentage: ${JSON.stringify(stages[1])}`);
});

test('a video with the cache and watermark-free on', async () => {
  assert.equal((await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'third_party',
    third_party_url: `${ctx.fake.url}/MP4/{post_id}.mp4` })).status, 200);
  assert.equal((await admin('/api/cache/enabled', { enabled: true })).status, 200);
  try {
    const { stages } = await sameAsStream({ model: 'sora-video-10s', messages: user(`stages of a dog [${Date.now()}]`) }, 'video');
    const names = stages.map((e) => `${e.stage}/${e.status}`);
    for (const want of ['generation/started', 'generation/processing', 'generation/completed',
      'watermark_free/started', 'watermark_free/completed', 'cache/started', 'cache/completed']) {
      assert.ok(names.includes(want), `${want} in ${names}`);
    }
    assert.equal(names.filter((n) => n === 'generation/processing').length, 1, 'one entry for the percentages');
  } finally {
    await admin('/api/watermark-free/config', { watermark_free_enabled: false });
    await admin('/api/cache/enabled', { enabled: false });
  }
});

test('failures: a content-policy refusal, a failed generation, a refused upload', async () => {
  let r = await sameAsStream({ model: 'sora-video-10s', messages: user(`stages #violate a mouse [${Date.now()}]`) }, 'violation');
  assert.equal(r.row.status, 'failed');
  assert.deepEqual(r.stages[r.stages.length - 1].stage, 'error', 'the refusal\'s own stage is kept');
  r = await sameAsStream({ model: 'sora-image', messages: user(`stages #fail [${Date.now()}]`) }, '#fail');
  assert.equal(r.row.status, 'failed');
  assert.equal(r.row.error_code, 'generation_failed');
  assert.ok(r.stages.length >= 1);

  await ctx.fake.arm({ route: 'POST /backend/uploads', status: 500, times: -1 });
  try {
    const png = await g.pngBytes(ctx.fake);
    const prompt = `stages upload [${Date.now()}]`;
    const s = g.parseStream(await g.chat(ctx.d, { model: 'sora-image', stream: true, messages: user([{ type: 'text', text: prompt },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }]) }));
    assert.equal(s.error.code, 'upload_failed');
    const row = await finishedRow(prompt);
    assert.deepEqual(row.stages.map((e) => { const c = Object.assign({}, e); delete c.t; return c; }), collapse(s.rcs));
  } finally {
    await g.disarm(ctx.fake);
  }
});

test('a long #slow video: every percentage in the stream, one entry in the history', async () => {
  let r = await sameAsStream({ model: 'sora-video-10s', messages: user(`stages long #slow [${Date.now()}]`) }, '#slow');
  assert.equal(r.stages.filter((e) => e.stage === 'generation' && e.status === 'processing').length, 1);
  // Longer: 90 percentages, one a poll.
  const pending = Array.from({ length: 90 }, (_, i) => (i + 1) / 100);
  await g.fakeCall(ctx.fake, 'POST', '/__fake/script', { keywords: { '#ticks': { video: { pending } } } });
  r = await sameAsStream({ model: 'sora-video-10s', messages: user(`stages #ticks [${Date.now()}]`) }, '#ticks');
  const { s, stages } = r;
  const ticks = s.rcs.filter((e) => e.stage === 'generation' && e.status === 'processing').length;
  assert.ok(ticks >= 80, `the stream showed ${ticks} percentages`);
  assert.equal(stages.filter((e) => e.stage === 'generation' && e.status === 'processing').length, 1);
  assert.ok(stages.length <= 64);
  assert.ok(stages.every((e) => Buffer.byteLength(e.message) <= 256));
});

test('a resumed job goes on with the history its row kept', async () => {
  const { d } = ctx;
  const prompt = `stages resumed #slow [${Date.now()}]`;
  const pending = g.chat(d, { model: 'sora-video-10s', messages: user(prompt), stream: true }).catch((e) => e);
  const pid = Number(await waitFor(() => d.sqlite(`SELECT worker_pid FROM tasks WHERE prompt = '${q(prompt)}'
    AND status = 'running' AND upstream_task_id IS NOT NULL AND stages LIKE '%processing%'`) || null, { what: 'running' }));
  const before = JSON.parse(d.sqlite(`SELECT stages FROM tasks WHERE prompt = '${q(prompt)}'`));
  process.kill(pid, 'SIGKILL');
  await pending;
  const row = await finishedRow(prompt);
  assert.equal(row.status, 'succeeded');
  assert.notEqual(Number(d.sqlite(`SELECT worker_pid FROM tasks WHERE prompt = '${q(prompt)}'`)), pid);
  // The entries from before the kill, then the resumed worker's.
  const kept = before.slice(0, -1);
  assert.deepEqual(row.stages.slice(0, kept.length), kept);
  const names = row.stages.map((e) => `${e.stage}/${e.status}`);
  assert.equal(names[0], 'generation/started');
  assert.equal(names.filter((n) => n === 'generation/started').length, 1, 'not started twice');
  assert.ok(names.includes('generation/completed'), names.join());
  await waitFor(() => d.workers().length === 2 && !pidAlive(pid), { what: 'the worker replaced' });
});
