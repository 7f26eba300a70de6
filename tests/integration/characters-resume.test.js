'use strict';
// Character jobs resumed from their rows (docs/characters.md,
// "Resume"): a worker killed with kill -9 while its cameo is processing
// (the cameo is polled on by another worker, never uploaded again, and
// the character finished and made public); a character+video job whose
// video runs when its worker dies (followed like a video, then its
// temporary character deleted); a character+video job stopped with the
// daemon (the next start finishes the video and deletes the character);
// a queued character row (failed interrupted: the video is not kept).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { request, waitFor } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);

async function mp4Of(fake) {
  return Buffer.from(await (await fetch(`${fake.url}/media/source.mp4`)).arrayBuffer()).toString('base64');
}

// status|mode|upstream task|worker pid of the newest character task row.
function newestTask(d) {
  return d.sqlite("SELECT status || '|' || mode || '|' || COALESCE(upstream_task_id, '') || '|' || "
    + "COALESCE(worker_pid, '') || '|' || job_id FROM tasks WHERE mode LIKE 'character%' ORDER BY id DESC LIMIT 1");
}

const ctlOf = (d) => async (msg) => (await request(d.base, 'POST', '/__test/ctl', { body: json(msg) })).json;

test('a worker killed while its cameo is processing: another worker polls it on and finishes the character', async () => {
  const ctx = await g.startGenPool({ workers: 2, poll: 100, allowedErrors: [/killed by signal 9/, /character/] });
  const { fake, d } = ctx;
  const ctl = ctlOf(d);
  try {
    const tok = await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const video = await mp4Of(fake);
    await g.fakeCall(fake, 'POST', '/__fake/script', { next: { cameo: [{ processing_polls: 30 }] } });
    const chat = g.chat(d, { model: 'sora-video-10s', stream: true, video, messages: g.user([]),
      character_options: { username: 'resumed_cat', display_name: 'Resumed Cat' } }, { timeout: 60000 }).catch((e) => e);
    // The row runs with the cameo as its upstream task.
    const row = await waitFor(() => {
      const r = newestTask(d);
      return /^running\|character\|[0-9a-f]{32}\|\d+\|/.test(r) ? r : null;
    }, { what: 'the cameo row' });
    const [, , cameo, pid, job] = row.split('|');
    const chars = (await ctl({ op: 'characters_list', limit: 10 })).rows.filter((c) => c.job_id === job);
    assert.equal(chars.length, 1);
    assert.equal(chars[0].state, 'processing');
    assert.equal(chars[0].cameo_id, cameo);
    process.kill(Number(pid), 'SIGKILL');
    await chat;
    // Another worker finishes it from the row.
    const end = await waitFor(() => {
      const r = d.sqlite(`SELECT status || '|' || COALESCE(error_code, '') FROM tasks WHERE job_id = '${job}'`);
      return /^(succeeded|failed|cancelled)/.test(r) ? r : null;
    }, { timeout: 30000, what: 'the resumed job\'s end' });
    assert.equal(end, 'succeeded|');
    const st = await g.fakeCall(fake, 'GET', '/__fake/state');
    assert.equal(st.cameos.filter((c) => c.owner_user_id === undefined || true).length >= 1, true);
    const j = await fake.journal('');
    assert.equal(j.entries.filter((e) => e.path === '/backend/characters/upload').length, 1, 'uploaded once');
    const row2 = (await ctl({ op: 'character_get', public_id: chars[0].id })).row;
    assert.equal(row2.state, 'ready');
    assert.equal(row2.visibility, 'public');
    assert.equal(row2.username, 'resumed_cat');
    assert.equal(row2.token_id, tok.id);
    const ch = st.characters.find((c) => c.character_id === row2.character_id);
    assert.equal(ch.visibility, 'public');
  } finally {
    await stopPool(ctx);
  }
});

test('character + video: killed while the video runs, and stopped with the daemon: the video is followed, then the character deleted', async () => {
  const ctx = await g.startGenPool({ workers: 2, poll: 100, server: { shutdown_timeout: '1' },
    allowedErrors: [/killed by signal 9/, /character/, /shutting down/, /drain deadline/] });
  const { fake, d } = ctx;
  const ctl = ctlOf(d);
  try {
    await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
    const video = await mp4Of(fake);
    const deletedCount = async () => (await g.fakeStats(fake)).counters.characters_deleted;
    const before = await deletedCount();
    const chat = g.chat(d, { model: 'sora-video-portrait-10s', stream: true, video,
      messages: g.user('runs slowly #slow'), character_options: { username: 'temp_resume' } }, { timeout: 60000 }).catch((e) => e);
    // The row runs with the video's task (task_...), not the cameo.
    const row = await waitFor(() => {
      const r = newestTask(d);
      return /^running\|character_video\|task_\w+\|\d+\|/.test(r) ? r : null;
    }, { what: 'the video row' });
    const [, , , pid, job] = row.split('|');
    process.kill(Number(pid), 'SIGKILL');
    await chat;
    await waitFor(() => /^succeeded/.test(d.sqlite(`SELECT status FROM tasks WHERE job_id = '${job}'`)),
      { timeout: 30000, what: 'the resumed video' });
    await waitFor(async () => (await deletedCount()) === before + 1, { what: 'the temporary character deleted' });
    const chars = (await ctl({ op: 'characters_list', limit: 10 })).rows.filter((c) => c.job_id === job);
    await waitFor(async () => (await ctl({ op: 'character_get', public_id: chars[0].id })).row.state === 'deleted',
      { what: 'the row deleted' });
    const j = await fake.journal('');
    assert.equal(j.entries.filter((e) => e.path === '/backend/nf/create').length, 1, 'the video went once');
    assert.equal(j.entries.find((e) => e.path === '/backend/nf/create').body.prompt, '@temp_resume runs slowly #slow');

    // A stop while the video runs: the next start follows it and deletes.
    // (A video that outlasts the 1 s shutdown_timeout: 40 polls.)
    await g.fakeCall(fake, 'POST', '/__fake/script', { next: { video: [{ pending: Array(40).fill(0.2) }] } });
    const before2 = await deletedCount();
    const chat2 = g.chat(d, { model: 'sora-video-10s', stream: true, video,
      messages: g.user('stopped midway'), character_options: { username: 'temp_stop' } }, { timeout: 60000 }).catch((e) => e);
    const row2 = await waitFor(() => {
      const r = newestTask(d);
      return /^running\|character_video\|task_\w+\|/.test(r) && r.includes('|') && !r.endsWith(`|${job}`) ? r : null;
    }, { what: 'the second video row' });
    const job2 = row2.split('|')[4];
    assert.equal((await d.stop()).code, 0);
    await chat2;
    assert.equal(d.sqlite(`SELECT status FROM tasks WHERE job_id = '${job2}'`), 'running', 'left for the next start');
    assert.equal(await deletedCount(), before2, 'not deleted by the stop');
    await d.start();
    await waitFor(() => /^succeeded/.test(d.sqlite(`SELECT status FROM tasks WHERE job_id = '${job2}'`)),
      { timeout: 30000, what: 'the video finished after the restart' });
    await waitFor(async () => (await deletedCount()) === before2 + 1, { what: 'the delete after the restart' });
  } finally {
    await stopPool(ctx);
  }
});

test('a queued character row is failed interrupted at the next start (the video is not kept)', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 100, server: { shutdown_timeout: '1' },
    allowedErrors: [/character/, /interrupted/, /shutting down/, /drain deadline/] });
  const { fake, d } = ctx;
  try {
    const video = await mp4Of(fake);
    // The only token busy with a stalled video: the job waits, its row queued.
    await g.addToken(ctx, { video_concurrency: 1 }, { remaining: null });
    const stall = g.chat(d, { model: 'sora-video-10s', stream: true, messages: g.user('busy #stall') }, { timeout: 60000 })
      .catch((e) => e);
    await waitFor(() => /^running/.test(d.sqlite("SELECT status FROM tasks WHERE prompt = 'busy #stall'")), { what: 'the busy token' });
    const r = g.chat(d, { model: 'sora-video-10s', stream: true, video, messages: g.user([]) }, { timeout: 60000 })
      .catch((e) => e);
    await waitFor(() => /^queued\|character\|/.test(newestTask(d)), { what: 'the queued row' });
    const job = newestTask(d).split('|')[4];
    assert.equal((await d.stop()).code, 0);
    await r;
    await stall;
    await d.start();
    const out = await waitFor(() => {
      const s = d.sqlite(`SELECT status || '|' || COALESCE(error_code, '') || '|' || COALESCE(error_message, '') FROM tasks WHERE job_id = '${job}'`);
      return /^failed/.test(s) ? s : null;
    }, { timeout: 20000, what: 'the queued row closed' });
    assert.match(out, /^failed\|interrupted\|.*video was not kept/);
    const j = await fake.journal('');
    assert.equal(j.entries.filter((e) => e.path === '/backend/characters/upload').length, 0, 'nothing uploaded');
  } finally {
    await stopPool(ctx);
  }
});
