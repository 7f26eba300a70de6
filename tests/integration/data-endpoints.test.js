'use strict';
// The Sora data endpoints (docs/data-endpoints.md): /v1/stats,
// /v1/invite-codes, /v1/profiles/{username}, /v1/users/{user_id}/feed,
// /v1/characters/search, /v1/feed and /v1/tokens/{id}/profile-feed,
// against the fake upstream: exact shapes, cursor paging, values that
// reach Sora intact as one value, the account choice, upstream failures,
// bounds, the answer cache and the user's document's examples 8-10 run
// with curl as written (host changed).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { Daemon, request, adminLogin, waitFor, AUTH } = require('./lib/daemon');
const g = require('./lib/gen');

let ctx; // the main daemon: cache off, 2 workers
let fake;
let d;
let dc; // a second daemon on the same fake: cache on, 1 worker
let t1;
let t2;
let t3;
let tc;
const UID = 'user-4qLuo8ATzeEsuvCpOUAfAZY0'; // the fake's seeded happyremixer
const CACHE_TTL_MS = 2000;

const get = (base, p, headers = AUTH) => request(base, 'GET', p, { headers });
const lastSeq = () => g.lastSeq(fake);
// Upstream calls of `route` since `since`, oldest first.
async function calls(route, since) {
  const j = await fake.journal(`?route=${encodeURIComponent(route)}&since=${since}`);
  return j.entries;
}
const R = {
  profile: 'GET /backend/project_y/profile/username/{username}',
  feedOf: 'GET /backend/project_y/profile_feed/{id}',
  search: 'GET /backend/project_y/profile/search_mentions',
  feed: 'GET /backend/project_y/feed',
  invite: 'GET /backend/project_y/invite/mine',
};
// The fake's own answer, read directly with an account's AT.
async function direct(p, at) {
  const r = await fetch(`${fake.url}/backend${p}`, { headers: { Authorization: `Bearer ${at}` } });
  assert.equal(r.status, 200, p);
  return r.json();
}

before(async () => {
  ctx = await g.startGenPool({ workers: 2, upstream: { data_cache_ttl_ms: '0' } });
  ({ fake, d } = ctx);
  t1 = await g.addToken(ctx, {}, { username: 'tokenone', invite_code: 'FULL01', redeemed_count: 4, total_count: 4, remaining: null, max_concurrent: 0 });
  t2 = await g.addToken(ctx, {}, { invite_code: 'OPEN02', redeemed_count: 1, total_count: 4 });
  t3 = await g.addToken(ctx, {}, { sora2_activated: false });
  assert.deepEqual([t1.id, t2.id, t3.id], [1, 2, 3]);
  for (const text of ['first post', 'second post', 'third post']) {
    await g.fakeCall(fake, 'POST', '/__fake/posts', { email: t1.acc.email, text });
  }
  await fake.account({ username: 'testcat', can_cameo: true });

  dc = await new Daemon({ conf: {
    server: { workers: '1' },
    upstream: Object.assign({}, fake.conf.upstream, { data_cache_ttl_ms: String(CACHE_TTL_MS), data_cache_entries: '2' }),
  } }).start();
  const cctx = { fake, d: dc, H: await adminLogin(dc) };
  tc = await g.addToken(cctx, {}, {});
});

after(async () => {
  assert.equal((await dc.stop()).code, 0);
  assert.deepEqual(dc.unexpectedErrors(), []);
  dc.cleanup();
  await g.disarm(fake);
  const { stopPool } = require('./lib/fake');
  await stopPool(ctx);
});

// ---------------------------------------------------------------- shapes

test('GET /v1/profiles/{username}: {success, profile} with Sora\'s whole profile (E28)', async () => {
  const r = await get(d.base, '/v1/profiles/happyremixer?token_id=1');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /^application\/json/);
  const raw = await direct('/project_y/profile/username/happyremixer', t1.at);
  assert.deepEqual(r.json, { success: true, profile: raw });
  for (const k of ['user_id', 'username', 'display_name', 'follower_count', 'following_count', 'post_count',
    'likes_received_count', 'remix_count', 'cameo_count', 'can_cameo', 'verified', 'description', 'permalink',
    'profile_picture_url']) {
    assert.ok(k in r.json.profile, k);
  }
  assert.equal(r.json.profile.user_id, UID);
});

test('GET /v1/users/{user_id}/feed: {success, user_id, feed} with the raw feed (E29)', async () => {
  const since = await lastSeq();
  const r = await get(d.base, `/v1/users/${UID}/feed?limit=2&token_id=1`);
  assert.equal(r.status, 200, r.text);
  const raw = await direct(`/project_y/profile_feed/${UID}?limit=2&cut=nf2`, t1.at);
  assert.deepEqual(r.json, { success: true, user_id: UID, feed: raw });
  const [e] = await calls(R.feedOf, since);
  assert.equal(e.raw_query, 'limit=2&cut=nf2');
  assert.equal(e.token, t1.at);
  // The default page is 8.
  const s2 = await lastSeq();
  assert.equal((await get(d.base, `/v1/users/${UID}/feed`)).status, 200);
  assert.equal((await calls(R.feedOf, s2))[0].raw_query, 'limit=8&cut=nf2');
});

test('GET /v1/characters/search: {success, query, count, results} from E31, owner null or {user_id, username, display_name}', async () => {
  const since = await lastSeq();
  const r = await get(d.base, '/v1/characters/search?username=s&intent=users&limit=10&token_id=2');
  assert.equal(r.status, 200, r.text);
  const raw = await direct('/project_y/profile/search_mentions?username=s&intent=users&limit=10', t2.at);
  const expected = raw.items.map((it) => ({
    user_id: it.profile.user_id, username: it.profile.username, display_name: it.profile.display_name,
    profile_picture_url: it.profile.profile_picture_url, permalink: it.profile.permalink,
    can_cameo: it.profile.can_cameo, verified: it.profile.verified, follower_count: it.profile.follower_count,
    token: it.token, owner: null,
  }));
  assert.ok(expected.length >= 2);
  assert.deepEqual(r.json, { success: true, query: 's', count: expected.length, results: expected });
  assert.deepEqual(Object.keys(r.json.results[0]), ['user_id', 'username', 'display_name', 'profile_picture_url',
    'permalink', 'can_cameo', 'verified', 'follower_count', 'token', 'owner']);
  const [e] = await calls(R.search, since);
  assert.equal(e.raw_query, 'username=s&intent=users&limit=10');

  // A character: its owner's three fields.
  const c = await get(d.base, '/v1/characters/search?username=fluffy&intent=cameo');
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.count, 1);
  assert.equal(c.json.results[0].token, '<@ch_693b0192af888191ac8b3af188acebce>');
  assert.equal(c.json.results[0].can_cameo, true);
  assert.deepEqual(Object.keys(c.json.results[0].owner).sort(), ['display_name', 'user_id', 'username']);
  // No username: an empty search text (the document marks it optional).
  const s3 = await lastSeq();
  const all = await get(d.base, '/v1/characters/search');
  assert.equal(all.status, 200, all.text);
  assert.equal(all.json.query, '');
  assert.equal((await calls(R.search, s3))[0].raw_query, 'username=&intent=users&limit=10');
});

test('GET /v1/feed: {success, cut, count, cursor, items} with the E32 fields of post, attachment and author', async () => {
  const r = await get(d.base, '/v1/feed?limit=3&cut=nf2_top&token_id=1');
  assert.equal(r.status, 200, r.text);
  const raw = await direct('/project_y/feed?limit=3&cut=nf2_top', t1.at);
  const expected = raw.items.map(({ post, profile }) => {
    const a = post.attachments[0];
    return {
      id: post.id, text: post.text, permalink: post.permalink, preview_image_url: post.preview_image_url,
      posted_at: post.posted_at, like_count: post.like_count, view_count: post.view_count, remix_count: post.remix_count,
      attachment: { kind: a.kind, url: a.url, downloadable_url: a.downloadable_url, width: a.width, height: a.height,
        n_frames: a.n_frames, duration_seconds: a.n_frames / 30, thumbnail_url: a.encodings.thumbnail.path },
      author: { user_id: profile.user_id, username: profile.username, display_name: profile.display_name,
        profile_picture_url: profile.profile_picture_url, permalink: profile.permalink, verified: profile.verified,
        follower_count: profile.follower_count },
    };
  });
  assert.deepEqual(r.json, { success: true, cut: 'nf2_top', count: 3, cursor: raw.cursor, items: expected });
  assert.equal(typeof r.json.cursor, 'string');
  // duration_seconds is a number of seconds (n_frames / 30), written as a real.
  assert.match(r.text, /"duration_seconds":\d+\.\d+/);
});

test('GET /v1/feed: a post without attachment or author gives null for them; missing fields are null', async () => {
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feed, status: 200, times: 1,
    body: { items: [{ post: { id: 's_x', text: 'bare', attachments: [] }, profile: null }, { nopost: true }], cursor: null } });
  const r = await get(d.base, '/v1/feed?limit=5');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { success: true, cut: 'nf2_latest', count: 1, cursor: null, items: [{
    id: 's_x', text: 'bare', permalink: null, preview_image_url: null, posted_at: null, like_count: null,
    view_count: null, remix_count: null, attachment: null, author: null,
  }] });
});

test('GET /v1/tokens/{id}/profile-feed: {success, token_id, feed} with that account\'s own posts (E30)', async () => {
  const since = await lastSeq();
  const r = await get(d.base, '/v1/tokens/1/profile-feed?limit=2');
  assert.equal(r.status, 200, r.text);
  const raw = await direct('/project_y/profile_feed/me?limit=2&cut=nf2', t1.at);
  assert.deepEqual(r.json, { success: true, token_id: 1, feed: raw });
  assert.deepEqual(r.json.feed.items.map((i) => i.post.text), ['third post', 'second post']);
  const [e] = await calls(R.feedOf, since);
  assert.equal(e.path, '/backend/project_y/profile_feed/me');
  assert.equal(e.raw_query, 'limit=2&cut=nf2');
  assert.equal(e.token, t1.at);
  g.assertHttpError(await get(d.base, '/v1/tokens/99/profile-feed'), 404, 'token_not_found', 'invalid_request_error');
  g.assertHttpError(await get(d.base, '/v1/tokens/x/profile-feed'), 404, 'unknown_url');
});

test('GET /v1/invite-codes: a Sora 2 account\'s code with uses left, or 404 no_invite_code', async () => {
  const since = await lastSeq();
  const r = await get(d.base, '/v1/invite-codes');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { success: true, invite_code: 'OPEN02', remaining_count: 3, total_count: 4, email: t2.acc.email });
  const asked = (await calls(R.invite, since)).map((e) => e.token);
  assert.ok(asked.includes(t2.at) && !asked.includes(t3.at), 'only Sora 2 accounts are asked');
  // token_id picks the account: t1's code has no use left.
  const full = g.assertHttpError(await get(d.base, '/v1/invite-codes?token_id=1'), 404, 'no_invite_code', 'invalid_request_error');
  assert.match(full.message, /uses left/);
  g.assertHttpError(await get(d.base, '/v1/invite-codes?token_id=77'), 404, 'token_not_found');
  const since3 = await lastSeq();
  const not2 = g.assertHttpError(await get(d.base, `/v1/invite-codes?token_id=${t3.id}`), 404, 'no_invite_code');
  assert.match(not2.message, /not a Sora 2 account/);
  assert.equal((await calls(R.invite, since3)).length, 0, 'an account without Sora 2 is not asked');
  // Every code used up: no code, a clear error (not a 200 with success:false).
  await fake.updateAccount({ email: t2.acc.email, redeemed_count: 4 });
  try {
    g.assertHttpError(await get(d.base, '/v1/invite-codes'), 404, 'no_invite_code');
  } finally {
    await fake.updateAccount({ email: t2.acc.email, redeemed_count: 1 });
  }
  // An account Sora refuses is skipped for the next one (both have uses
  // left here, so the answer is the second account's, whichever that is).
  await fake.updateAccount({ email: t1.acc.email, redeemed_count: 2 });
  try {
    await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.invite, preset: 'server_error', times: 1 });
    const s2 = await lastSeq();
    const again = await get(d.base, '/v1/invite-codes');
    assert.equal(again.status, 200, again.text);
    const es = await calls(R.invite, s2);
    assert.deepEqual(es.map((e) => e.status), [500, 200]);
    const second = es[1].token === t1.at ? t1 : t2;
    assert.notEqual(es[0].token, es[1].token);
    assert.deepEqual(again.json, second === t1
      ? { success: true, invite_code: 'FULL01', remaining_count: 2, total_count: 4, email: t1.acc.email }
      : { success: true, invite_code: 'OPEN02', remaining_count: 3, total_count: 4, email: t2.acc.email });
  } finally {
    await fake.updateAccount({ email: t1.acc.email, redeemed_count: 4 });
  }
});

// ---------------------------------------------------------------- paging

test('cursor paging: /v1/feed, /v1/users/{id}/feed and the token feed page through with Sora\'s cursor, cursor first upstream', async () => {
  const all = (await get(d.base, '/v1/feed?limit=100&cut=nf2_latest')).json;
  assert.equal(all.cursor, null);
  assert.equal(all.count, 9, 'six seeded posts and three of token 1');
  const p1 = (await get(d.base, '/v1/feed?limit=5&cut=nf2_latest')).json;
  assert.equal(typeof p1.cursor, 'string');
  const since = await lastSeq();
  const p2 = (await get(d.base, `/v1/feed?limit=5&cut=nf2_latest&cursor=${encodeURIComponent(p1.cursor)}`)).json;
  assert.equal(p2.cursor, null);
  assert.deepEqual([...p1.items, ...p2.items].map((i) => i.id), all.items.map((i) => i.id));
  const [e] = await calls(R.feed, since);
  assert.equal(e.raw_query, `cursor=${encodeURIComponent(p1.cursor)}&limit=5&cut=nf2_latest`);
  assert.equal(e.query.cursor, p1.cursor);

  const u1 = (await get(d.base, `/v1/users/${UID}/feed?limit=1`)).json.feed;
  const u2 = (await get(d.base, `/v1/users/${UID}/feed?limit=1&cursor=${encodeURIComponent(u1.cursor)}`)).json.feed;
  assert.notEqual(u2.items[0].post.id, u1.items[0].post.id);

  const m1 = (await get(d.base, '/v1/tokens/1/profile-feed?limit=2')).json.feed;
  const m2 = (await get(d.base, `/v1/tokens/1/profile-feed?limit=2&cursor=${encodeURIComponent(m1.cursor)}`)).json.feed;
  assert.deepEqual([...m1.items, ...m2.items].map((i) => i.post.text), ['third post', 'second post', 'first post']);
  assert.equal(m2.cursor, null);
});

// ---------------------------------------------------------------- encoding

const HOSTILE = ['a&limit=999', 'zoë 猫 🎈', 'x#y', '100%', 'two words', 'a+b', '=&?/', '%41%2F'];

test('hostile search values reach Sora intact, as one username, the other values untouched', async () => {
  for (const v of HOSTILE) {
    const since = await lastSeq();
    const r = await get(d.base, `/v1/characters/search?${new URLSearchParams({ username: v, intent: 'cameo' })}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.query, v);
    const es = await calls(R.search, since);
    assert.equal(es.length, 1, v);
    assert.deepEqual(es[0].query, { username: v, intent: 'cameo', limit: '10' }, v);
    assert.deepEqual(Object.keys(es[0].query), ['username', 'intent', 'limit']);
  }
  // A literal '+' in the query is a space, as in any form encoding.
  const since = await lastSeq();
  assert.equal((await get(d.base, '/v1/characters/search?username=two+words')).status, 200);
  assert.equal((await calls(R.search, since))[0].query.username, 'two words');
});

test('hostile path values stay one path segment: profiles and user feeds', async () => {
  for (const v of [...HOSTILE, 'a/b', '../me']) {
    const since = await lastSeq();
    const r = await get(d.base, `/v1/profiles/${encodeURIComponent(v)}`);
    g.assertHttpError(r, 404, 'not_found', 'invalid_request_error');
    assert.equal(r.json.error.message, 'User not found');
    const [e] = await calls(R.profile, since);
    assert.ok(e, `a profile call for ${v}`);
    assert.deepEqual(e.params, { username: v });
    assert.equal(e.raw_query, '');

    const s2 = await lastSeq();
    const f = await get(d.base, `/v1/users/${encodeURIComponent(v)}/feed?limit=3`);
    g.assertHttpError(f, 404, 'not_found');
    const [fe] = await calls(R.feedOf, s2);
    assert.deepEqual(fe.params, { id: v });
    assert.deepEqual(fe.query, { limit: '3', cut: 'nf2' });
  }
});

test('a hostile cursor reaches Sora as one cursor value', async () => {
  const v = 'x&cut=nf2_top#%2 é';
  const since = await lastSeq();
  await get(d.base, `/v1/feed?${new URLSearchParams({ cursor: v, limit: '2' })}`);
  const [e] = await calls(R.feed, since);
  assert.deepEqual(e.query, { cursor: v, limit: '2', cut: 'nf2_latest' });
  const s2 = await lastSeq();
  await get(d.base, `/v1/tokens/1/profile-feed?${new URLSearchParams({ cursor: v })}`);
  assert.deepEqual((await calls(R.feedOf, s2))[0].query, { cursor: v, limit: '8', cut: 'nf2' });
});

// ---------------------------------------------------------------- accounts

test('token_id picks the account; unknown is 404, a non-integer 400; without it an active account is used', async () => {
  for (const t of [t1, t2, t3]) {
    const since = await lastSeq();
    assert.equal((await get(d.base, `/v1/profiles/happyremixer?token_id=${t.id}`)).status, 200);
    assert.equal((await calls(R.profile, since))[0].token, t.at);
  }
  let e = g.assertHttpError(await get(d.base, '/v1/feed?token_id=999'), 404, 'token_not_found', 'invalid_request_error');
  assert.equal(e.param, 'token_id');
  for (const bad of ['abc', '0', '-1', '1.5', '', '1e3', '%31x']) {
    e = g.assertHttpError(await get(d.base, `/v1/characters/search?token_id=${bad}`), 400, 'invalid_value', 'invalid_request_error');
    assert.equal(e.param, 'token_id', bad);
  }
  // Without token_id: a usable account, never a disabled one.
  let r = await request(d.base, 'POST', `/api/tokens/${t1.id}/disable`, { headers: ctx.H });
  assert.equal(r.status, 200, r.text);
  r = await request(d.base, 'POST', `/api/tokens/${t2.id}/disable`, { headers: ctx.H });
  assert.equal(r.status, 200, r.text);
  try {
    const since = await lastSeq();
    for (let i = 0; i < 4; i++) assert.equal((await get(d.base, '/v1/profiles/happyremixer')).status, 200);
    const used = (await calls(R.profile, since)).map((x) => x.token);
    assert.deepEqual(used, [t3.at, t3.at, t3.at, t3.at]);
    // No Sora 2 account left for invite codes.
    g.assertHttpError(await get(d.base, '/v1/invite-codes'), 404, 'no_invite_code');
    r = await request(d.base, 'POST', `/api/tokens/${t3.id}/disable`, { headers: ctx.H });
    assert.equal(r.status, 200, r.text);
    e = g.assertHttpError(await get(d.base, '/v1/feed'), 503, 'no_available_token', 'server_error');
  } finally {
    for (const t of [t1, t2, t3]) {
      r = await request(d.base, 'POST', `/api/tokens/${t.id}/enable`, { headers: ctx.H });
      assert.equal(r.status, 200, r.text);
    }
  }
  // Sora 2 accounts come first, round-robin between them.
  const since = await lastSeq();
  for (let i = 0; i < 4; i++) assert.equal((await get(d.base, '/v1/feed?limit=1')).status, 200);
  const used = new Set((await calls(R.feed, since)).map((x) => x.token));
  assert.ok(!used.has(t3.at), 'the account without Sora 2 is not used while Sora 2 accounts are');
});

// ---------------------------------------------------------------- errors

test('an upstream error is a 502 with Sora\'s message, never an empty list', async () => {
  const cases = [
    [R.feed, '/v1/feed'],
    [R.search, '/v1/characters/search?username=s'],
    [R.feedOf, `/v1/users/${UID}/feed`],
    [R.feedOf, '/v1/tokens/2/profile-feed'],
    [R.profile, '/v1/profiles/happyremixer'],
    [R.invite, '/v1/invite-codes?token_id=2'],
  ];
  for (const [route, p] of cases) {
    await g.fakeCall(fake, 'POST', '/__fake/arm', { route, status: 500, times: 1,
      body: { error: { message: `boom at ${p}`, type: 'server_error', param: null, code: 'internal' } } });
    const r = await get(d.base, p);
    assert.equal(r.status, 502, `${p}: ${r.text}`);
    assert.deepEqual(r.json, { error: { message: `boom at ${p}`, type: 'upstream_error', param: null, code: 'upstream_error' } });
  }
  // No JSON body, an HTML page, a dropped connection.
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feed, preset: 'not_json', times: 1 });
  g.assertHttpError(await get(d.base, '/v1/feed'), 502, 'upstream_error', 'upstream_error');
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feed, preset: 'cloudflare', times: 1 });
  g.assertHttpError(await get(d.base, '/v1/feed'), 502, 'upstream_error');
  // (libcurl sends a request again once when a reused connection turns
  // out closed, so the drop stays armed until disarmed.)
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feed, drop: true, times: -1 });
  const dropped = g.assertHttpError(await get(d.base, '/v1/feed'), 502, 'upstream_error');
  assert.match(dropped.message, /^Sora unreachable: /);
  await g.disarm(fake);
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feed, preset: 'empty', times: 1 });
  g.assertHttpError(await get(d.base, '/v1/feed'), 502, 'upstream_error');
});

test('a 401 from Sora answers 502 with its message and marks nothing on the account', async () => {
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.profile, preset: 'token_invalidated', times: 1 });
  const e = g.assertHttpError(await get(d.base, '/v1/profiles/happyremixer?token_id=2'), 502, 'upstream_error');
  assert.match(e.message, /invalidated/);
  const t = await g.tokenById(ctx, t2.id);
  assert.equal(t.state, 'active');
  assert.equal(t.is_active, true);
  assert.equal((await get(d.base, '/v1/profiles/happyremixer?token_id=2')).status, 200);
});

// ---------------------------------------------------------------- bounds

test('limit is 1..100 (400 with param outside); bad intent, cut and oversized values are 400', async () => {
  for (const p of ['/v1/feed', '/v1/characters/search', `/v1/users/${UID}/feed`, '/v1/tokens/1/profile-feed']) {
    for (const bad of ['0', '101', '-1', 'abc', '', '1.0', '%00']) {
      const e = g.assertHttpError(await get(d.base, `${p}?limit=${bad}`), 400, 'invalid_value', 'invalid_request_error');
      assert.equal(e.param, 'limit', `${p} limit=${bad}`);
    }
    for (const ok of ['1', '100']) {
      const since = await lastSeq();
      assert.equal((await get(d.base, `${p}?limit=${ok}`)).status, 200, `${p} limit=${ok}`);
      const es = (await fake.journal(`?since=${since}`)).entries.filter((x) => x.path.startsWith('/backend/project_y/'));
      assert.equal(es[0].query.limit, ok);
    }
  }
  assert.equal(g.assertHttpError(await get(d.base, '/v1/characters/search?intent=bogus'), 400, 'invalid_value').param, 'intent');
  assert.equal(g.assertHttpError(await get(d.base, '/v1/feed?cut=nf2_nope'), 400, 'invalid_value').param, 'cut');
  assert.equal(g.assertHttpError(await get(d.base, `/v1/characters/search?username=${'u'.repeat(129)}`), 400, 'invalid_value').param, 'username');
  assert.equal(g.assertHttpError(await get(d.base, `/v1/profiles/${'u'.repeat(129)}`), 400, 'invalid_value').param, 'username');
  assert.equal(g.assertHttpError(await get(d.base, `/v1/feed?cursor=${'c'.repeat(513)}`), 400, 'invalid_value').param, 'cursor');
  // 128 bytes of values that escape to three bytes each still fit.
  assert.equal((await get(d.base, `/v1/characters/search?username=${'%26'.repeat(128)}`)).status, 200);
  assert.equal(g.assertHttpError(await get(d.base, `/v1/feed?cursor=${'%26'.repeat(512)}`), 400, 'invalid_value').param, 'cursor');
  // Paths no route serves, a wrong method, no key.
  for (const p of ['/v1/users/x', '/v1/users/x/feed/', '/v1/users//feed', '/v1/profiles/', '/v1/profiles/a/b']) {
    g.assertHttpError(await get(d.base, p), 404, 'unknown_url');
  }
  g.assertHttpError(await request(d.base, 'POST', '/v1/feed', { headers: AUTH, body: '{}' }), 405, 'method_not_allowed');
  for (const p of ['/v1/stats', '/v1/invite-codes', '/v1/feed', '/v1/profiles/x', '/v1/users/x/feed', '/v1/characters/search', '/v1/tokens/1/profile-feed']) {
    g.assertHttpError(await get(d.base, p, {}), 401, 'invalid_api_key');
  }
});

// ---------------------------------------------------------------- cache

test('cache: a burst of identical requests costs one upstream call; kept for the TTL, then fetched again', async () => {
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feed, delay_ms: 300, times: 1 });
  const since = await lastSeq();
  const burst = await Promise.all(Array.from({ length: 5 }, () => get(dc.base, '/v1/feed?limit=5&cut=nf2_top')));
  const answered = Date.now();
  for (const r of burst) {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, burst[0].text);
  }
  assert.equal((await calls(R.feed, since)).length, 1, 'one upstream call for the burst');
  assert.equal((await get(dc.base, '/v1/feed?limit=5&cut=nf2_top')).text, burst[0].text);
  assert.equal((await calls(R.feed, since)).length, 1, 'answered from the cache');
  // After the TTL the next request goes to Sora again.
  await waitFor(async () => {
    assert.equal((await get(dc.base, '/v1/feed?limit=5&cut=nf2_top')).status, 200);
    return (await calls(R.feed, since)).length === 2;
  }, { timeout: CACHE_TTL_MS * 5, interval: 100, what: 'a second upstream call after the TTL' });
  assert.ok(Date.now() - answered >= CACHE_TTL_MS - 300, `kept for the TTL (${Date.now() - answered} ms)`);
});

test('cache: different queries, routes and accounts are separate entries; defaults and order normalise', async () => {
  const since = await lastSeq();
  for (const p of ['/v1/characters/search?username=sk', '/v1/characters/search?limit=10&intent=users&username=sk',
    '/v1/characters/search?username=sk&limit=10']) {
    assert.equal((await get(dc.base, p)).status, 200);
  }
  assert.equal((await calls(R.search, since)).length, 1, 'one entry for the same normalised query');
  const s2 = await lastSeq();
  assert.equal((await get(dc.base, '/v1/characters/search?username=sk&limit=9')).status, 200);
  assert.equal((await get(dc.base, `/v1/characters/search?username=sk&token_id=${tc.id}`)).status, 200);
  assert.equal((await get(dc.base, '/v1/characters/search?username=sk&intent=cameo')).status, 200);
  assert.equal((await calls(R.search, s2)).length, 3, 'limit, token_id and intent each make their own entry');
});

test('cache: failures are shared with the requests waiting, never kept', async () => {
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.profile, status: 500, delay_ms: 300, times: 1,
    body: { error: { message: 'shared failure' } } });
  const since = await lastSeq();
  const burst = await Promise.all(Array.from({ length: 3 }, () => get(dc.base, '/v1/profiles/skaterdog')));
  for (const r of burst) {
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.message, 'shared failure');
  }
  assert.equal((await calls(R.profile, since)).length, 1);
  const ok = await get(dc.base, '/v1/profiles/skaterdog');
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await calls(R.profile, since)).length, 2, 'the failure was not kept');
});

test('cache: a client leaving while its read is in flight does not stop the read; the next one gets its answer', async () => {
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: R.feedOf, delay_ms: 500, times: 1 });
  const since = await lastSeq();
  await assert.rejects(request(dc.base, 'GET', `/v1/users/${UID}/feed?limit=3`, { headers: AUTH, timeout: 100 }), /timeout/);
  const r = await get(dc.base, `/v1/users/${UID}/feed?limit=3`);
  assert.equal(r.status, 200, r.text);
  assert.equal((await calls(R.feedOf, since)).length, 1);
});

test('cache: bounded entries, the oldest leaves first (data_cache_entries = 2)', async () => {
  const since = await lastSeq();
  const q = (n) => get(dc.base, `/v1/feed?limit=${n}&cut=nf2`);
  for (const n of [11, 12, 13]) assert.equal((await q(n)).status, 200);
  assert.equal((await calls(R.feed, since)).length, 3);
  assert.equal((await q(13)).status, 200);
  assert.equal((await q(12)).status, 200);
  assert.equal((await calls(R.feed, since)).length, 3, '12 and 13 are still kept');
  assert.equal((await q(11)).status, 200);
  assert.deepEqual((await calls(R.feed, since)).map((e) => e.query.limit), ['11', '12', '13', '11'], '11 had left');
});

// ---------------------------------------------------------------- the document

// Examples 8, 9 and 10 of the user's document (sora2api-README.zh.md,
// "8. 搜索用户/角色", "9. 获取公共 Feed", "10. 获取 Token 发布内容"),
// verbatim; only the host is changed.
const DOC = {
  8: `curl -X GET "http://localhost:8000/v1/characters/search?username=test&intent=cameo&limit=10" \\
  -H "Authorization: Bearer han1234"`,
  9: `curl -X GET "http://localhost:8000/v1/feed?limit=8&cut=nf2_latest" \\
  -H "Authorization: Bearer han1234"`,
  10: `curl -X GET "http://localhost:8000/v1/tokens/1/profile-feed?limit=12" \\
  -H "Authorization: Bearer han1234"`,
};

function runCurl(cmd) {
  const line = cmd.replaceAll('http://localhost:8000', d.base);
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', `${line} -sS -w '\\n%{http_code}'`], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      const i = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(i + 1)), json: JSON.parse(stdout.slice(0, i)) });
    });
  });
}

test('the document\'s example 8 (search users and characters) runs as written', async () => {
  const since = await lastSeq();
  const r = await runCurl(DOC[8]);
  assert.equal(r.status, 200);
  assert.equal(r.json.success, true);
  assert.equal(r.json.query, 'test');
  assert.deepEqual(r.json.results.map((x) => x.username), ['testcat']);
  assert.equal(r.json.count, 1);
  assert.equal((await calls(R.search, since))[0].raw_query, 'username=test&intent=cameo&limit=10');
});

test('the document\'s example 9 (public feed, latest) runs as written', async () => {
  const r = await runCurl(DOC[9]);
  assert.equal(r.status, 200);
  assert.equal(r.json.success, true);
  assert.equal(r.json.cut, 'nf2_latest');
  assert.equal(r.json.count, r.json.items.length);
  assert.equal(r.json.count, 8);
  assert.equal(typeof r.json.cursor, 'string', 'more than 8 posts: a cursor for the next page');
  assert.equal(r.json.items[0].text, 'third post', 'newest first');
});

test('the document\'s example 10 (token 1\'s own posts) runs as written', async () => {
  const r = await runCurl(DOC[10]);
  assert.equal(r.status, 200);
  assert.equal(r.json.success, true);
  assert.equal(r.json.token_id, 1);
  assert.deepEqual(r.json.feed.items.map((i) => i.post.text), ['third post', 'second post', 'first post']);
  assert.equal(r.json.feed.cursor, null);
});

// ---------------------------------------------------------------- stats

test('GET /v1/stats: the master\'s token states and today\'s and total images and videos', async () => {
  const stats = async () => {
    const r = await get(d.base, '/v1/stats');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json), ['success', 'stats']);
    assert.equal(r.json.success, true);
    return r.json.stats;
  };
  assert.deepEqual(await stats(), {
    total_tokens: 3, active_tokens: 3, today_images: 0, total_images: 0, today_videos: 0, total_videos: 0,
    today_errors: 0, total_errors: 0, tokens_by_state: { active: 3, disabled: 0, invalid: 0, expired: 0, cooling: 0 },
  });
  // One image and one video, through token 1.
  await request(d.base, 'POST', `/api/tokens/${t2.id}/disable`, { headers: ctx.H });
  await request(d.base, 'POST', `/api/tokens/${t3.id}/disable`, { headers: ctx.H });
  const img = await request(d.base, 'POST', '/v1/images/generations', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: JSON.stringify({ prompt: 'a stats cat', model: 'sora-image' }), timeout: 30000 });
  assert.equal(img.status, 200, img.text);
  const vid = g.parseStream(await g.chat(d, { model: 'sora-video-landscape-10s', messages: g.user('a stats dog'), stream: true }));
  assert.equal(vid.content.type, 'video', vid.text);
  const want = {
    total_tokens: 3, active_tokens: 1, today_images: 1, total_images: 1, today_videos: 1, total_videos: 1,
    today_errors: 0, total_errors: 0, tokens_by_state: { active: 1, disabled: 2, invalid: 0, expired: 0, cooling: 0 },
  };
  await waitFor(async () => { assert.deepEqual(await stats(), want); return true; }, { what: 'the counts of the two jobs' });
  // The same numbers as the admin's /api/stats.
  const admin = (await request(d.base, 'GET', '/api/stats', { headers: ctx.H })).json;
  for (const k of Object.keys(want)) {
    if (k !== 'tokens_by_state') assert.equal(admin[k], want[k], k);
  }
  assert.deepEqual(admin.states, want.tokens_by_state);
  for (const t of [t2, t3]) await request(d.base, 'POST', `/api/tokens/${t.id}/enable`, { headers: ctx.H });
});
