'use strict';
// Upkeep the master schedules: AT refresh through ST then RT, failures
// that expire a token, quota re-reads.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Daemon, request, waitFor } = require('./lib/daemon');
const { startPool, stopPool } = require('./lib/fake');

const json = (o) => JSON.stringify(o);
let fake;
let d;
let H;

before(async () => {
  ({ fake, d, H } = await startPool());
});
after(() => stopPool({ fake, d }));

const get = async (id) => (await request(d.base, 'GET', '/api/tokens?reveal=1', { headers: H })).json.find((t) => t.id === id);
const sweep = () => request(d.base, 'POST', '/__test/sweep');

async function addToken(accOpts, extra = {}) {
  const acc = await fake.account(accOpts);
  const body = Object.assign({ token: acc.access_token }, extra);
  if (extra.st === true) body.st = acc.session_token;
  if (extra.rt === true) body.rt = acc.refresh_token;
  const r = await request(d.base, 'POST', '/api/tokens', { headers: H, body: json(body) });
  assert.equal(r.status, 200, r.text);
  return { acc, id: r.json.token_id };
}

test('refresh settings are exposed and can be changed', async () => {
  let r = await request(d.base, 'GET', '/api/token-refresh/config', { headers: H });
  assert.deepEqual(r.json, { success: true, config: { at_auto_refresh_enabled: true, at_refresh_window: 86400, quota_refresh_interval: 3600 } });
  r = await request(d.base, 'POST', '/api/token-refresh/enabled', { headers: H, body: json({ enabled: 'no' }) });
  assert.equal(r.status, 400);
  r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ at_refresh_window: 10 }) });
  assert.equal(r.status, 400);
});

test('an AT close to expiry is refreshed from its session token', async () => {
  const { acc, id } = await addToken({ at_lifetime_s: 3600 }, { st: true });
  const before = await get(id);
  await sweep();
  const after = await waitFor(async () => {
    const t = await get(id);
    return t.token !== acc.access_token ? t : null;
  }, { what: 'refreshed AT' });
  assert.match(after.token, /^eyJ/);
  assert.equal(after.state, 'active');
  assert.equal(after.state_reason, 'access token refreshed');
  assert.ok(Date.parse(after.expiry_time) >= Date.parse(before.expiry_time));
  assert.match(d.log(), new RegExp(`token ${id} refreshed \\(session token\\)`));
});

test('a dead session token falls back to the refresh token, which rotates', async () => {
  const { acc, id } = await addToken({ at_lifetime_s: 3600 }, { st: true, rt: true });
  await fake.updateAccount({ access_token: acc.access_token, invalidate_session: true });
  await sweep();
  const t = await waitFor(async () => {
    const x = await get(id);
    return x.token !== acc.access_token ? x : null;
  }, { what: 'refreshed via RT' });
  assert.notEqual(t.rt, acc.refresh_token);
  assert.match(d.log(), new RegExp(`token ${id} refreshed \\(refresh token\\)`));
  // The rotated RT is the one that works now.
  const r = await request(d.base, 'POST', '/api/tokens/rt2at', { headers: H, body: json({ rt: t.rt }) });
  assert.equal(r.status, 200);
});

test('when both fail the token is expired, with the reasons', async () => {
  const { acc, id } = await addToken({ at_lifetime_s: 3600 }, { st: true, rt: true });
  await fake.updateAccount({ access_token: acc.access_token, invalidate_session: true, invalidate_refresh: true });
  await sweep();
  const t = await waitFor(async () => {
    const x = await get(id);
    return x.state === 'expired' ? x : null;
  }, { what: 'expired state' });
  assert.match(t.state_reason, /session token: invalid or expired; refresh token: /);
  assert.equal(t.token, acc.access_token);
  const stats = (await request(d.base, 'GET', '/api/stats', { headers: H })).json;
  assert.ok(stats.states.expired >= 1);
});

test('a refresh that yields an already expired AT expires the token', async () => {
  const { id } = await addToken({ at_lifetime_s: 3600 }, { st: true });
  // Every AT minted for the account from now on is born expired.
  const t0 = await get(id);
  await fake.updateAccount({ email: t0.email, at_lifetime_s: -60 });
  await sweep();
  const t = await waitFor(async () => {
    const x = await get(id);
    return x.state === 'expired' ? x : null;
  }, { what: 'expired after a stale refresh' });
  assert.match(t.state_reason, /obtained from the session token has already expired/);
});

test('tokens far from expiry or without ST/RT are left alone; quota is re-read', async () => {
  const { acc, id } = await addToken({ remaining: 20 }, { st: true });
  const { id: bare } = await addToken({ at_lifetime_s: 3600 });
  await fake.updateAccount({ access_token: acc.access_token, remaining: 0, resets_in: 7200 });
  await fake.clearJournal();
  await sweep();
  const t = await waitFor(async () => {
    const x = await get(id);
    return x.sora2_remaining_count === 0 ? x : null;
  }, { what: 'quota re-read' });
  assert.ok(Date.parse(t.sora2_cooldown_until) > Date.now() + 7000 * 1000);
  assert.equal(t.token, acc.access_token);
  assert.equal((await get(bare)).state, 'active');
  const paths = (await fake.journal()).entries.map((e) => e.path);
  // Nothing was due for a refresh: no session or OAuth call at all.
  assert.equal(paths.filter((p) => p === '/api/auth/session' || p === '/oauth/token').length, 0);
  assert.ok(paths.includes('/backend/nf/check'));
});

test('the plan is re-read with the quota; a reset quota is read at once', async () => {
  const { acc, id } = await addToken({ plan: 'chatgpt_plus', remaining: 0, resets_in: 1 });
  let t = await get(id);
  assert.equal(t.plan_type, 'chatgpt_plus');
  assert.equal(t.sora2_remaining_count, 0);
  assert.ok(t.sora2_cooldown_until !== null);
  await fake.updateAccount({ access_token: acc.access_token, plan: 'chatgpt_pro', remaining: 7 });
  await new Promise((r) => setTimeout(r, 1100));   // past the cooldown
  await sweep();
  t = await waitFor(async () => {
    const x = await get(id);
    return x.sora2_remaining_count === 7 && x.plan_type === 'chatgpt_pro' ? x : null;
  }, { what: 'quota and plan re-read' });
  assert.equal(t.sora2_cooldown_until, null);
});

test('with auto-refresh off nothing is refreshed', async () => {
  const r = await request(d.base, 'POST', '/api/token-refresh/enabled', { headers: H, body: json({ enabled: false }) });
  assert.deepEqual(r.json, { success: true, message: 'AT auto-refresh disabled' });
  const { acc, id } = await addToken({ at_lifetime_s: 3600 }, { st: true });
  await fake.clearJournal();
  await sweep();
  await new Promise((res) => setTimeout(res, 700));
  assert.equal((await get(id)).token, acc.access_token);
  const sessions = (await fake.journal()).entries.filter((e) => e.path === '/api/auth/session');
  assert.equal(sessions.length, 0);
});
