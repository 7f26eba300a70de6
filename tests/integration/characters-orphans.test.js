'use strict';
// Upstream character deletes the gateway owes and finishes itself
// (docs/characters.md, "No orphans"): a temporary character whose
// delete fails is deleted by a later pass; a worker killed with the
// delete held open by the fake: the delete is handed out again after
// the kill; back-off bounded by [characters] delete_attempts, then the
// row says it was given up; keep: true, and a live job's character, are
// never touched; a row an ended job left without a mark is found; a
// token deleted meanwhile closes the row.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { request, waitFor } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { json, user } = g;
const ROUTE = 'DELETE /backend/project_y/characters/{id}';
let ctx;
let fake;
let d;
let tok;
let mp4B64;

before(async () => {
  // Three attempts at most, retried at the next pass (no wait).
  ctx = await g.startGenPool({ workers: 2, poll: 100, allowedErrors: [/character/, /job_/, /killed by signal 9/],
    sections: { characters: { delete_attempts: '3', delete_retry_base: '0' } } });
  ({ fake, d } = ctx);
  tok = await g.addToken(ctx, { video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
  mp4B64 = Buffer.from(await (await fetch(`${fake.url}/media/source.mp4`)).arrayBuffer()).toString('base64');
  // The pass at start is done (the next one is a minute away, or asked).
  await waitFor(() => d.log().includes('character deletes: the first pass'), { what: 'the first pass' });
});
after(() => stopPool(ctx));

const ctl = async (msg) => (await request(d.base, 'POST', '/__test/ctl', { body: json(msg) })).json;
const rowOf = async (publicId) => (await ctl({ op: 'character_get', public_id: publicId })).row;
const byName = async (username) => (await ctl({ op: 'characters_list', username, limit: 5 })).rows[0];
const deletedCount = async () => (await g.fakeStats(fake)).counters.characters_deleted;
const sweep = () => request(d.base, 'POST', '/__test/sweep');
const arm = (spec) => g.fakeCall(fake, 'POST', '/__fake/arm', Object.assign({ route: ROUTE }, spec));
const upstream = async (characterId) => (await g.fakeCall(fake, 'GET', '/__fake/state')).characters
  .find((c) => c.character_id === characterId);
const deletesOf = async (characterId) => (await fake.journal('')).entries
  .filter((e) => e.method === 'DELETE' && e.path === `/backend/project_y/characters/${characterId}`);

// A character + video job (its temporary character made, the video run).
async function charVideo(username, { text = '在草地上奔跑', keep } = {}) {
  const options = { username };
  if (keep !== undefined) options.keep = keep;
  const r = await g.chat(d, { model: 'sora-video-landscape-10s', stream: true, character_options: options,
    messages: user([{ type: 'text', text }, { type: 'video_url', video_url: { url: `data:video/mp4;base64,${mp4B64}` } }]) },
  { timeout: 60000 });
  return g.parseStream(r);
}

const disarm = () => g.fakeCall(fake, 'DELETE', '/__fake/arm');

// A temporary character whose job's own delete failed: `deleting`. The
// deletes keep failing until disarm() (a pass of the minute may come at
// any time: it fails too, and adds an attempt).
async function orphan(username) {
  await arm({ status: 500, times: -1 });
  const s = await charVideo(username);
  assert.equal(s.error, undefined, JSON.stringify(s.error));
  const row = await byName(username);
  await waitFor(async () => /attempt 1 of 3/.test((await rowOf(row.id)).error || ''), { what: `${username}: the failed attempt` });
  return rowOf(row.id);
}

test('a temporary character whose delete fails stays deleting, and the next pass deletes it', async () => {
  const before0 = await deletedCount();
  const row = await orphan('orphan_one');
  assert.equal(row.state, 'deleting');
  assert.equal(row.temporary, true);
  assert.match(row.error, /^the character could not be deleted upstream \(.+\); attempt 1 of 3, the gateway tries again$/);
  assert.ok(await upstream(row.character_id), 'still there upstream');
  assert.equal(await deletedCount(), before0);
  // Not in sticky routing any more, nor retrievable as a live character.
  assert.deepEqual((await ctl({ op: 'character_owners', usernames: ['orphan_one'] })).rows, []);
  // The admin filter knows the state.
  const list = await request(d.base, 'GET', '/api/characters?state=deleting', { headers: ctx.H });
  assert.equal(list.status, 200, list.text);
  assert.ok(list.json.characters.every((c) => c.state === 'deleting'));
  assert.ok(list.json.characters.some((c) => c.id === row.id));
  await disarm();
  await sweep();
  await waitFor(async () => (await rowOf(row.id)).state === 'deleted', { what: 'the row deleted by the pass' });
  assert.equal(await deletedCount(), before0 + 1);
  assert.equal(await upstream(row.character_id), undefined);
  const done = await rowOf(row.id);
  assert.equal(done.error, null, 'the retry message goes with the delete');
  assert.ok((await deletesOf(row.character_id)).length >= 2, 'the job\'s attempt and the pass\'s');
});

test('the delete of a worker killed before its answer is handed out again', async () => {
  const before0 = await deletedCount();
  await arm({ hang: true, times: 1 });
  const s = await charVideo('orphan_killed');
  assert.equal(s.error, undefined, JSON.stringify(s.error));
  const row = await byName('orphan_killed');
  // The job's own delete is out and held open by the fake.
  await waitFor(async () => (await deletesOf(row.character_id)).some((e) => e.status === 'hung'), { what: 'the held delete' });
  assert.equal((await rowOf(row.id)).state, 'deleting');
  const pid = Number(d.sqlite(`SELECT worker_pid FROM tasks WHERE job_id = '${row.job_id}'`));
  assert.ok(pid > 0);
  process.kill(pid, 'SIGKILL');
  await waitFor(async () => (await rowOf(row.id)).state === 'deleted', { timeout: 30000, what: 'the delete after the kill' });
  assert.equal(await deletedCount(), before0 + 1);
  assert.equal(await upstream(row.character_id), undefined);
  assert.equal((await deletesOf(row.character_id)).length, 2);
});

test('a delete that keeps failing is given up after delete_attempts, and then left alone', async () => {
  await arm({ status: 502, times: -1 });
  let row;
  try {
    const s = await charVideo('orphan_stuck');
    assert.equal(s.error, undefined, JSON.stringify(s.error));
    row = await byName('orphan_stuck');
    await waitFor(async () => /attempt 1 of 3/.test((await rowOf(row.id)).error || ''), { what: 'attempt 1' });
    // Each pass makes one attempt more (a pass of the minute may add one).
    for (let n = 2; n <= 3; n++) {
      await sweep();
      await waitFor(async () => (await deletesOf(row.character_id)).length >= n, { what: `attempt ${n}` });
    }
    await waitFor(async () => (await rowOf(row.id)).state === 'failed', { what: 'given up' });
  } finally {
    await disarm();
  }
  const r = await rowOf(row.id);
  assert.match(r.error, /^the character could not be deleted upstream after 3 attempts \(last: .+\); it may remain at Sora: delete it from \/api\/characters$/);
  assert.ok(await upstream(r.character_id), 'still there upstream');
  assert.equal((await deletesOf(r.character_id)).length, 3);
  // A later pass (it deletes another orphan) leaves the given-up row.
  const other = await orphan('orphan_after');
  await disarm();
  await sweep();
  await waitFor(async () => (await rowOf(other.id)).state === 'deleted', { what: 'the other orphan' });
  assert.equal((await deletesOf(r.character_id)).length, 3, 'no fourth attempt');
  assert.equal((await rowOf(row.id)).state, 'failed');
  // The operator's delete still works.
  const del = await request(d.base, 'DELETE', `/api/characters/${r.id}`, { headers: ctx.H });
  assert.equal(del.status, 200, del.text);
  assert.equal(await upstream(r.character_id), undefined);
});

test('keep: true and a live job\'s character are never swept; a row an ended job left unmarked is found', async () => {
  // Kept: after a video that succeeded, and after one that failed.
  let s = await charVideo('kept_ok', { keep: true });
  assert.equal(s.error, undefined);
  s = await charVideo('kept_failed', { keep: true, text: 'runs #fail' });
  assert.equal(s.error.code, 'generation_failed');
  const kept = [await byName('kept_ok'), await byName('kept_failed')];
  for (const k of kept) assert.deepEqual([k.state, k.temporary], ['ready', false]);
  const orph = await orphan('orphan_third');
  await disarm();
  // A character + video job whose video runs (100 polls of 100 ms).
  await g.fakeCall(fake, 'POST', '/__fake/script', { next: { video: [{ pending: Array(100).fill(0.2) }] } });
  const live = charVideo('live_cat');
  const liveRow = await waitFor(async () => {
    const r = await byName('live_cat');
    return r && r.state === 'ready'
      && /^running\|task_/.test(d.sqlite(`SELECT status || '|' || upstream_task_id FROM tasks WHERE job_id = '${r.job_id}'`))
      ? r : null;
  }, { what: 'the live job\'s video' });
  await sweep();
  await waitFor(async () => (await rowOf(orph.id)).state === 'deleted', { what: 'the pass ran' });
  assert.equal((await rowOf(liveRow.id)).state, 'ready', 'the live job keeps its character');
  assert.equal((await deletesOf(liveRow.character_id)).length, 0);
  for (const k of kept) {
    assert.equal((await rowOf(k.id)).state, 'ready');
    assert.equal((await deletesOf(k.character_id)).length, 0);
    assert.ok(await upstream(k.character_id));
  }
  // The live job ends and deletes its own character.
  assert.equal((await live).error, undefined);
  await waitFor(async () => (await rowOf(liveRow.id)).state === 'deleted', { what: 'the live job\'s own delete' });
  assert.equal((await deletesOf(liveRow.character_id)).length, 1);

  // A temporary row still `ready` whose job is gone (the mark never came):
  // the pass marks it and deletes it, once its end is a minute old.
  const now = Math.floor(Date.now() / 1000);
  let w = await ctl({ op: 'character_write', public_id: kept[0].id,
    fields: { temporary: true, job_id: 'job_gone_long_ago', updated_at: now - 3600 } });
  assert.equal(w.ok, true, JSON.stringify(w));
  // And one that ended just now: not yet.
  w = await ctl({ op: 'character_write', public_id: kept[1].id, fields: { temporary: true, job_id: 'job_gone_now' } });
  assert.equal(w.ok, true, JSON.stringify(w));
  await sweep();
  await waitFor(async () => (await rowOf(kept[0].id)).state === 'deleted', { what: 'the unmarked orphan' });
  assert.equal(await upstream(kept[0].character_id), undefined);
  assert.equal((await rowOf(kept[1].id)).state, 'ready', 'an end under a minute old waits');
});

test('a token deleted before the retry: the row is closed and says the character may remain', async () => {
  const row = await orphan('orphan_tokenless');
  const del = await request(d.base, 'DELETE', `/api/tokens/${tok.id}`, { headers: ctx.H });
  assert.equal(del.status, 200, del.text);
  const tried = (await deletesOf(row.character_id)).length;
  await disarm();
  await sweep();
  await waitFor(async () => (await rowOf(row.id)).state === 'failed', { what: 'the row closed' });
  assert.equal((await rowOf(row.id)).error, 'its token was deleted; the character may remain at Sora');
  assert.equal((await deletesOf(row.character_id)).length, tried, 'no attempt without the token');
});
