'use strict';
// The characters table and its admin routes (docs/characters.md): rows
// listed with filters and pages, looked up by any of their ids, updated
// on Sora first with the account that made them (update_v2, checked in
// the fake's own state) and deleted on Sora and here; refusals, an
// upstream failure that leaves the row as it was, a token that is gone.
// Characters are made on the fake through its real endpoints (upload,
// in_progress, avatar, finalize) with the account's AT, and their rows
// written through the test build's /__test/ctl (character_write).
// Sticky routing: a chat generation that mentions a character runs on
// the token that made it (the fake's journal says which AT it saw), a
// public one's falls back to any token, a private one's fails clearly,
// and a prompt without a mention asks the master nothing (one worker, so
// /__test/sticky's counters are the whole daemon's).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { request, assertServing } = require('./lib/daemon');
const g = require('./lib/gen');

let ctx;
let A;
let B;
let mp4;
let webp;
const api = (method, p, body, headers = ctx.H) => request(ctx.d.base, method, p, {
  headers: Object.assign({ 'Content-Type': 'application/json' }, headers),
  body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
});
const ctl = async (msg) => (await request(ctx.d.base, 'POST', '/__test/ctl', { body: JSON.stringify(msg) })).json;
const publicId = () => `char_${crypto.randomBytes(12).toString('hex')}`;
const fakeState = () => g.fakeCall(ctx.fake, 'GET', '/__fake/state');
const ROW_KEYS = ['cameo_id', 'character_id', 'created_at', 'display_name', 'error', 'id', 'instruction_set', 'job_id',
  'owner', 'profile_url', 'safety_instruction_set', 'state', 'temporary', 'token_id', 'updated_at', 'username', 'visibility'];

async function backend(method, p, at, { json, form } = {}) {
  const r = await fetch(`${ctx.fake.url}/backend${p}`, {
    method,
    headers: Object.assign({ authorization: `Bearer ${at}` }, json ? { 'content-type': 'application/json' } : {}),
    body: json ? JSON.stringify(json) : form,
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A character made on the fake by token `tok` and its row here:
// `finalize: false` stops after the upload (a processing cameo).
async function makeCharacter(tok, { username, display = 'A Cat', visibility = 'private', finalize = true, temporary = false } = {}) {
  const up = new FormData();
  up.append('file', new Blob([mp4], { type: 'video/mp4' }), 'video.mp4');
  up.append('timestamps', '0,3');
  const cameo = (await backend('POST', '/characters/upload', tok.at, { form: up })).id;
  const fields = { token_id: tok.id, cameo_id: cameo, display_name: display, temporary, state: 'processing' };
  if (finalize) {
    let st;
    do {
      st = await backend('GET', `/project_y/cameos/in_progress/${cameo}`, tok.at);
    } while (st.status_message !== 'Completed');
    const av = new FormData();
    av.append('file', new Blob([webp], { type: 'image/webp' }), 'profile.webp');
    av.append('use_case', 'profile');
    const ptr = (await backend('POST', '/project_y/file/upload', tok.at, { form: av })).asset_pointer;
    const fin = await backend('POST', '/characters/finalize', tok.at, { json: {
      cameo_id: cameo, username, display_name: display, profile_asset_pointer: ptr,
      instruction_set: { value: [{ type: 'text', value: 'Orange, fluffy.' }] }, safety_instruction_set: null,
    } });
    if (visibility === 'public') {
      await backend('POST', `/project_y/cameos/by_id/${cameo}/update_v2`, tok.at, { json: { visibility: 'public' } });
    }
    Object.assign(fields, { character_id: fin.character.character_id, username, state: 'ready', visibility,
      profile_url: st.profile_asset_url, instruction_set: 'Orange, fluffy.' });
  }
  const r = await ctl({ op: 'character_write', public_id: publicId(), fields });
  assert.equal(r.ok, true, JSON.stringify(r));
  return r.row;
}

const getRow = async (id) => {
  const r = await api('GET', `/api/characters/${id}`);
  return r.status === 200 ? r.json.character : null;
};

before(async () => {
  ctx = await g.startGenPool({ workers: '1' });
  A = await g.addToken(ctx);
  B = await g.addToken(ctx);
  mp4 = Buffer.from(await (await fetch(`${ctx.fake.url}/media/src.mp4`)).arrayBuffer());
  webp = Buffer.from(await (await fetch(`${ctx.fake.url}/media/src.webp`)).arrayBuffer());
});

after(async () => {
  assert.equal((await ctx.d.stop()).code, 0);
  assert.deepEqual(ctx.d.unexpectedErrors(), []);
  ctx.d.cleanup();
  await ctx.fake.close();
});

test('character_write and friends check what they are given', async () => {
  const id = publicId();
  let r = await ctl({ op: 'character_write', public_id: id, fields: { username: 'nobody' } });
  assert.deepEqual([r.ok, r.code, r.error], [false, 'invalid', 'token_id is required for a new character']);
  r = await ctl({ op: 'character_write', public_id: 'char_XYZ', fields: { token_id: A.id } });
  assert.deepEqual([r.ok, r.code], [false, 'invalid']);
  for (const [fields, msg] of [
    [{ token_id: A.id, visibility: 'friends' }, 'visibility must be one of public, private'],
    [{ token_id: A.id, state: 'done' }, 'state must be one of processing, ready, failed, deleting, deleted'],
    [{ token_id: A.id, temporary: 1 }, 'temporary must be a boolean'],
    [{ token_id: A.id, instruction_set: 'x'.repeat(4097) }, 'instruction_set must be a string of at most 4096 bytes or null'],
    [{ token_id: A.id, username: 'u'.repeat(65) }, 'username must be a string of at most 64 bytes or null'],
    [{ token_id: A.id, created_at: 5 }, 'unknown field "created_at"'],
    [{ token_id: '1' }, 'token_id must be a positive integer'],
  ]) {
    r = await ctl({ op: 'character_write', public_id: id, fields });
    assert.deepEqual([r.ok, r.code, r.error], [false, 'invalid', msg], JSON.stringify(fields));
  }
  assert.equal((await ctl({ op: 'character_get', public_id: id })).row, undefined, 'nothing was written');
  r = await ctl({ op: 'character_write', public_id: id, fields: { token_id: A.id, cameo_id: 'c'.repeat(32) } });
  assert.equal(r.ok, true);
  assert.deepEqual(Object.keys(r.row).sort(), ROW_KEYS);
  assert.deepEqual([r.row.id, r.row.state, r.row.visibility, r.row.temporary, r.row.owner, r.row.username],
    [id, 'processing', 'private', false, 0, null]);
  const other = publicId();
  r = await ctl({ op: 'character_write', public_id: other, fields: { token_id: B.id, cameo_id: 'c'.repeat(32) } });
  assert.deepEqual([r.ok, r.code], [false, 'conflict']);
  r = await ctl({ op: 'character_owners', usernames: Array.from({ length: 17 }, (_, i) => `name${i}`) });
  assert.deepEqual([r.ok, r.code], [false, 'invalid']);
  assert.equal((await ctl({ op: 'character_delete', public_id: id })).ok, true);
  r = await ctl({ op: 'character_delete', public_id: id });
  assert.deepEqual([r.ok, r.code], [false, 'not_found']);
});

test('GET /api/characters: newest first, filters, pages, refusals', async () => {
  const workersBefore = ctx.d.workers();
  const alice = await makeCharacter(A, { username: 'alice.cat' });
  const bob = await makeCharacter(A, { username: 'bob_dog', display: 'Bob the Dog', visibility: 'public' });
  const carol = await makeCharacter(B, { finalize: false, display: 'Carol' });
  let r = await api('GET', '/api/characters');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.success, true);
  assert.equal(r.json.total, 3);
  assert.deepEqual(r.json.characters.map((c) => c.id), [carol.id, bob.id, alice.id]);
  assert.deepEqual(r.json.characters[2], alice);
  assert.equal(alice.state, 'ready');
  assert.match(alice.character_id, /^ch_[0-9a-f]{32}$/);
  assert.match(alice.profile_url, /^http:\/\/127\.0\.0\.1:\d+\/media\/avatar\//);

  const ids = async (q) => {
    const x = await api('GET', `/api/characters${q}`);
    assert.equal(x.status, 200, `${q}: ${x.text}`);
    return [x.json.characters.map((c) => c.id), x.json.total];
  };
  assert.deepEqual(await ids(`?token_id=${A.id}`), [[bob.id, alice.id], 2]);
  assert.deepEqual(await ids(`?token_id=${B.id}&state=processing`), [[carol.id], 1]);
  assert.deepEqual(await ids('?state=ready'), [[bob.id, alice.id], 2]);
  assert.deepEqual(await ids('?state=failed'), [[], 0]);
  assert.deepEqual(await ids('?username=ALICE.cat'), [[alice.id], 1]);
  assert.deepEqual(await ids('?username=alice'), [[], 0], 'username is an exact match');
  assert.deepEqual(await ids('?search=DOG'), [[bob.id], 1], 'search looks into the display name too');
  assert.deepEqual(await ids('?search=a'), [[carol.id, alice.id], 2]);
  assert.deepEqual(await ids('?limit=1'), [[carol.id], 3]);
  assert.deepEqual(await ids('?limit=1&offset=1'), [[bob.id], 3]);
  assert.deepEqual(await ids('?limit=2&offset=2'), [[alice.id], 3]);
  assert.deepEqual(await ids('?offset=3'), [[], 3]);

  for (const [q, detail] of [
    ['?limit=0', 'limit must be an integer from 1 to 1000'],
    ['?limit=1001', 'limit must be an integer from 1 to 1000'],
    ['?limit=x', 'limit must be an integer from 1 to 1000'],
    ['?offset=-1', 'offset must be an integer from 0 to 1000000'],
    ['?token_id=0', 'token_id must be an integer from 1 to 9223372036854775807'],
    ['?state=gone', 'state must be processing, ready, failed, deleting or deleted'],
    [`?username=${'u'.repeat(65)}`, 'username must be 1 to 64 bytes'],
    [`?search=${'s'.repeat(65)}`, 'search must be at most 64 bytes'],
  ]) {
    const x = await api('GET', `/api/characters${q}`);
    assert.equal(x.status, 400, q);
    assert.deepEqual(x.json, { detail }, q);
  }
  r = await api('GET', '/api/characters', undefined, {});
  assert.equal(r.status, 401, 'an admin session is needed');
  r = await api('GET', `/api/characters/${alice.id}`, undefined, {});
  assert.equal(r.status, 401);
  await assertServing(ctx.d, workersBefore);
});

test('GET /api/characters/{id} by public, cameo or character id; a token\'s characters', async () => {
  const row = await makeCharacter(B, { username: 'dora.fish' });
  for (const key of [row.id, row.cameo_id, row.character_id]) {
    const r = await api('GET', `/api/characters/${key}`);
    assert.equal(r.status, 200, key);
    assert.deepEqual(r.json, { success: true, character: row });
  }
  for (const key of [publicId(), 'ch_' + '0'.repeat(32), 'f'.repeat(32), 'char_short', 'a%20b', 'x'.repeat(200)]) {
    const r = await api('GET', `/api/characters/${key}`);
    assert.equal(r.status, 404, key);
    assert.deepEqual(r.json, { detail: 'Character not found' });
  }
  let r = await api('GET', `/api/characters/${row.id}/other`);
  assert.equal(r.status, 404);
  r = await api('PUT', `/api/characters/${row.id}`, {});
  assert.equal(r.status, 405);
  r = await api('GET', `/api/characters/${row.id}/update`);
  assert.equal(r.status, 405);

  r = await api('GET', `/api/tokens/${B.id}/characters`);
  assert.equal(r.status, 200);
  assert.equal(r.json.success, true);
  assert.equal(r.json.token_id, B.id);
  assert.ok(r.json.characters.length >= 1);
  assert.ok(r.json.characters.every((c) => c.token_id === B.id));
  assert.equal(r.json.characters[0].id, row.id, 'newest first');
  r = await api('GET', '/api/tokens/987654/characters');
  assert.equal(r.status, 404);
  assert.deepEqual(r.json, { detail: 'Token not found' });
});

test('update: checked, pushed to Sora with the owner\'s token first, then the row', async () => {
  const workersBefore = ctx.d.workers();
  const row = await makeCharacter(A, { username: 'eve.owl', display: 'Eve' });
  const url = `/api/characters/${row.id}/update`;
  for (const [body, detail] of [
    [{}, 'Nothing to update: give display_name, instruction_set, safety_instruction_set or visibility'],
    [{ visibility: 'friends' }, 'visibility must be "public" or "private"'],
    [{ display_name: '   ' }, 'display_name must be a non-empty string of at most 256 bytes'],
    [{ display_name: null }, 'display_name must be a non-empty string of at most 256 bytes'],
    [{ instruction_set: 5 }, 'instruction_set must be a string of at most 4096 bytes or null'],
    [{ safety_instruction_set: 'x'.repeat(4097) }, 'safety_instruction_set must be a string of at most 4096 bytes or null'],
    [{ username: 'other' }, 'Unknown field "username" (display_name, instruction_set, safety_instruction_set and visibility can be changed)'],
  ]) {
    const r = await api('POST', url, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.deepEqual(r.json, { detail }, JSON.stringify(body));
  }
  assert.equal((await api('POST', url, 'not json')).status, 400);
  await ctx.fake.clearJournal();
  let r = await api('POST', url, { display_name: 'Eve the Owl', instruction_set: 'Wise, <b>round</b>.', safety_instruction_set: null, visibility: 'public' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.success, true);
  assert.equal(r.json.result.cameo.id, row.cameo_id, 'Sora\'s answer as it came');
  const c = r.json.character;
  assert.deepEqual([c.display_name, c.instruction_set, c.safety_instruction_set, c.visibility],
    ['Eve the Owl', 'Wise, <b>round</b>.', null, 'public']);
  assert.ok(c.updated_at >= row.updated_at);
  assert.deepEqual(await getRow(row.id), c);
  const calls = (await ctx.fake.journal('?route=POST%20/backend/project_y/cameos/by_id/{id}/update_v2')).entries;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].token, A.at, 'the account that made the character');
  assert.deepEqual(calls[0].body, {
    display_name: 'Eve the Owl', visibility: 'public',
    instruction_set: { value: [{ type: 'text', value: 'Wise, <b>round</b>.' }] }, safety_instruction_set: null,
  });
  const st = await fakeState();
  const cameo = st.cameos.find((x) => x.id === row.cameo_id);
  assert.deepEqual([cameo.display_name, cameo.visibility, cameo.instruction_set],
    ['Eve the Owl', 'public', { value: [{ type: 'text', value: 'Wise, <b>round</b>.' }] }]);
  assert.equal(st.characters.find((x) => x.character_id === row.character_id).display_name, 'Eve the Owl');

  // PATCH does the same; only what is given changes.
  r = await api('PATCH', `/api/characters/${row.cameo_id}`, { visibility: 'private' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.json.character.visibility, r.json.character.display_name], ['private', 'Eve the Owl']);
  assert.deepEqual(calls.length, 1);
  const last = (await ctx.fake.journal('?route=POST%20/backend/project_y/cameos/by_id/{id}/update_v2')).entries.pop();
  assert.deepEqual(last.body, { visibility: 'private' });

  // Sora refuses: 502 with its message, the row as it was.
  const before = await getRow(row.id);
  await ctx.fake.arm({ route: 'POST /backend/project_y/cameos/by_id/{id}/update_v2', status: 500,
    body: { error: { message: 'Cameo store is down', type: 'server_error', param: null, code: 'boom' } } });
  r = await api('POST', url, { display_name: 'Never' });
  assert.equal(r.status, 502);
  assert.match(r.json.detail, /^Sora refused the update \(status 500\): Cameo store is down$/);
  assert.deepEqual(await getRow(row.id), before);
  // A connection dropped without an answer (twice: libcurl tries a
  // reused connection that died once more on a fresh one).
  await ctx.fake.arm({ route: 'POST /backend/project_y/cameos/by_id/{id}/update_v2', drop: true, times: 2 });
  r = await api('POST', url, { display_name: 'Never' });
  await g.disarm(ctx.fake);
  assert.equal(r.status, 502);
  assert.match(r.json.detail, /^Sora did not answer the update: /);
  assert.deepEqual(await getRow(row.id), before);
  assert.equal((await fakeState()).cameos.find((x) => x.id === row.cameo_id).display_name, 'Eve the Owl');

  r = await api('POST', '/api/characters/char_000000000000000000000000/update', { visibility: 'public' });
  assert.equal(r.status, 404);
  const pending = await makeCharacter(A, { finalize: false });
  r = await api('POST', `/api/characters/${pending.id}/update`, { visibility: 'public' });
  assert.equal(r.status, 409);
  assert.deepEqual(r.json, { detail: 'Character is processing, not ready: only a ready character can be updated' });
  await assertServing(ctx.d, workersBefore);
});

test('delete: on Sora, then here; local_only; Sora failing keeps the row; the token gone', async () => {
  const one = await makeCharacter(B, { username: 'fred.frog' });
  await ctx.fake.clearJournal();
  let r = await api('DELETE', `/api/characters/${one.id}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { success: true, message: 'Character deleted' });
  const del = (await ctx.fake.journal('?route=DELETE%20/backend/project_y/characters/{id}')).entries;
  assert.deepEqual(del.map((e) => [e.path, e.token, e.status]), [[`/backend/project_y/characters/${one.character_id}`, B.at, 204]]);
  assert.equal((await fakeState()).characters.find((x) => x.character_id === one.character_id), undefined);
  assert.equal(await getRow(one.id), null);
  assert.equal((await api('DELETE', `/api/characters/${one.id}`)).status, 404);

  // Sora no longer has it (404): gone there too, the row goes.
  const two = await makeCharacter(B, { username: 'gina.goat' });
  await backend('DELETE', `/project_y/characters/${two.character_id}`, B.at);
  r = await api('DELETE', `/api/characters/${two.character_id}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(await getRow(two.id), null);

  // Sora failing: 502, the row kept; then local_only removes only the row.
  const three = await makeCharacter(B, { username: 'hank.hare' });
  await ctx.fake.arm({ route: 'DELETE /backend/project_y/characters/{id}', status: 503, times: 1 });
  r = await api('DELETE', `/api/characters/${three.id}`);
  assert.equal(r.status, 502);
  assert.match(r.json.detail, /^Sora did not delete the character \(status 503\): .*local_only=true removes only it\)$/);
  assert.deepEqual(await getRow(three.id), three);
  await ctx.fake.arm({ route: 'DELETE /backend/project_y/characters/{id}', drop: true, times: 2 });
  r = await api('DELETE', `/api/characters/${three.id}`);
  await g.disarm(ctx.fake);
  assert.equal(r.status, 502);
  assert.match(r.json.detail, /^Sora did not delete the character \(no answer\): /);
  assert.deepEqual(await getRow(three.id), three);
  await ctx.fake.clearJournal();
  r = await api('DELETE', `/api/characters/${three.id}?local_only=true`);
  assert.equal(r.status, 200, r.text);
  assert.equal(await getRow(three.id), null);
  assert.equal((await ctx.fake.journal('?route=DELETE%20/backend/project_y/characters/{id}')).entries.length, 0);
  assert.ok((await fakeState()).characters.find((x) => x.character_id === three.character_id), 'still on Sora');

  // A cameo never finalized has nothing on Sora: only the row goes.
  const four = await makeCharacter(B, { finalize: false });
  r = await api('DELETE', `/api/characters/${four.cameo_id}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(await getRow(four.id), null);
});

test('the token that made a character is gone: 409 for update and delete, local_only still works', async () => {
  const C = await g.addToken(ctx);
  const row = await makeCharacter(C, { username: 'ivan.ibis' });
  const r0 = await api('DELETE', `/api/tokens/${C.id}`);
  assert.equal(r0.status, 200, r0.text);
  let r = await api('POST', `/api/characters/${row.id}/update`, { visibility: 'public' });
  assert.equal(r.status, 409);
  assert.deepEqual(r.json, { detail: `The token that created this character (id ${C.id}) is no longer in the pool` });
  r = await api('DELETE', `/api/characters/${row.id}`);
  assert.equal(r.status, 409);
  assert.match(r.json.detail, /no longer in the pool; local_only=true removes the record$/);
  assert.deepEqual(await getRow(row.id), row);
  assert.equal((await api('GET', `/api/tokens/${C.id}/characters`)).status, 404);
  r = await api('DELETE', `/api/characters/${row.id}?local_only=1`);
  assert.equal(r.status, 200);
  assert.equal(await getRow(row.id), null);
});

// ---------------------------------------------------------------------
// Sticky routing

const sticky = async () => (await request(ctx.d.base, 'GET', '/__test/sticky')).json;
// One image generation through chat; resolves {r, calls} with the
// video_gen calls the fake saw for it.
async function imageJob(prompt) {
  const since = await g.lastSeq(ctx.fake);
  const r = await g.chat(ctx.d, { model: 'sora-image', messages: g.user(prompt), stream: false });
  const calls = g.byPath(await g.genCalls(ctx.fake, since), 'POST', '/backend/video_gen');
  return { r, calls };
}
const tokenOf = (at) => [A, B].find((t) => t.at === at);

test('sticky routing: a private character runs on its token; none asked without a mention', async () => {
  // Which token the pool picks for a job that mentions nobody.
  let s0 = await sticky();
  const plain = await imageJob('a red bicycle, mail me at bob@example.test');
  g.parseCompletion(plain.r);
  assert.equal(plain.calls.length, 1);
  const usual = tokenOf(plain.calls[0].token);
  assert.ok(usual);
  assert.deepEqual(await sticky(), s0, 'no @name: no character_owners call');
  // The other token makes the character.
  const owner = usual === A ? B : A;
  await makeCharacter(owner, { username: 'priv.cat' });
  for (const prompt of ['a photo of @Priv.Cat on a sofa', 'look, @priv.cat.', '@priv.cat and @nobody.here at the beach']) {
    s0 = await sticky();
    const job = await imageJob(prompt);
    g.parseCompletion(job.r);
    assert.deepEqual(job.calls.map((c) => c.token), [owner.at], prompt);
    assert.equal(job.calls[0].body.prompt, prompt, 'the prompt goes to Sora as it was');
    const s1 = await sticky();
    assert.deepEqual([s1.lookups - s0.lookups, s1.pinned - s0.pinned], [1, 1], prompt);
  }
  // A name nobody has: one lookup, no pin, the usual token.
  s0 = await sticky();
  const other = await imageJob('@somebody.else waves');
  g.parseCompletion(other.r);
  const s1 = await sticky();
  assert.deepEqual([s1.lookups - s0.lookups, s1.pinned - s0.pinned], [1, 0]);
});

test('sticky routing: busy token waited for; public falls back; private fails clearly', async () => {
  const pub = await makeCharacter(A, { username: 'pub.dog', visibility: 'public' });
  await makeCharacter(B, { username: 'solo.owl' });
  // solo.owl's token takes one image at a time: two jobs queue on it.
  let r = await api('PUT', `/api/tokens/${B.id}`, { image_concurrency: 1 });
  assert.equal(r.status, 200, r.text);
  const since = await g.lastSeq(ctx.fake);
  const [j1, j2] = await Promise.all([
    g.chat(ctx.d, { model: 'sora-image', messages: g.user('@solo.owl flies #slow'), stream: false }),
    g.chat(ctx.d, { model: 'sora-image', messages: g.user('@solo.owl sleeps'), stream: false }),
  ]);
  g.parseCompletion(j1);
  g.parseCompletion(j2);
  const subs = g.byPath(await g.genCalls(ctx.fake, since), 'POST', '/backend/video_gen');
  assert.deepEqual(subs.map((c) => c.token), [B.at, B.at], 'both waited for the owner\'s token');
  r = await api('PUT', `/api/tokens/${B.id}`, { image_concurrency: -1 });
  assert.equal(r.status, 200, r.text);

  // The public character's token is disabled: any other token runs it.
  r = await api('POST', `/api/tokens/${A.id}/disable`);
  assert.equal(r.status, 200, r.text);
  let job = await imageJob(`@${pub.username} runs`);
  g.parseCompletion(job.r);
  assert.deepEqual(job.calls.map((c) => c.token), [B.at]);
  r = await api('POST', `/api/tokens/${A.id}/enable`);
  assert.equal(r.status, 200, r.text);

  // The private character's token is disabled: nothing else may run it.
  r = await api('POST', `/api/tokens/${B.id}/disable`);
  assert.equal(r.status, 200, r.text);
  job = await imageJob('@solo.owl hoots');
  const err = g.assertHttpError(job.r, 503, 'no_available_token');
  assert.equal(err.message, `the character @solo.owl is private to token ${B.id}, which cannot take it: disabled`);
  assert.equal(job.calls.length, 0);
  r = await api('POST', `/api/tokens/${B.id}/enable`);
  assert.equal(r.status, 200, r.text);

  // Two private characters of different tokens cannot meet.
  const c2 = await makeCharacter(A, { username: 'twin.one' });
  job = await imageJob(`@solo.owl meets @${c2.username}`);
  const err2 = g.assertHttpError(job.r, 503, 'no_available_token');
  assert.equal(err2.message, 'the private characters @solo.owl and @twin.one belong to different tokens: no token can use both');
});
