'use strict';
// The account pool: onboarding against the fake upstream, every failure it
// can inject, the token routes, persistence, concurrency.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { request, sleep, adminLogin } = require('./lib/daemon');
const { startPool, stopPool } = require('./lib/fake');

const json = (o) => JSON.stringify(o);
let fake;
let d;
let H;


const add = (body) => request(d.base, 'POST', '/api/tokens', { headers: H, body: json(body) });
const list = async (q = '') => (await request(d.base, 'GET', `/api/tokens${q}`, { headers: H })).json;

before(async () => {
  ({ fake, d, H } = await startPool());
  // These tests read exact upstream call sequences: keep the background
  // quota checks (tested in tokens-refresh) out of the journal.
  const r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ quota_refresh_interval: 0 }) });
  assert.equal(r.status, 200);
});
after(() => stopPool({ fake, d }));

test('adding a token runs the onboarding sequence and stores what Sora said', async () => {
  await fake.clearJournal();
  const acc = await fake.account({ email: 'onboard@example.test', plan: 'chatgpt_pro', remaining: 12 });
  const r = await add({ token: acc.access_token, st: acc.session_token, rt: acc.refresh_token, remark: 'main', video_concurrency: 3, proxy_url: '' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ['message', 'success', 'token_id']);
  assert.equal(r.json.success, true);
  const paths = (await fake.journal()).entries.map((e) => `${e.method} ${e.path}`);
  assert.deepEqual(paths, ['GET /backend/me', 'GET /backend/billing/subscriptions',
    'GET /backend/project_y/invite/mine', 'GET /backend/nf/check']);
  const j = (await fake.journal()).entries[0];
  assert.equal(j.headers.authorization, `Bearer ${acc.access_token}`);
  assert.equal(j.headers.origin, 'https://sora.chatgpt.com');
  const t = (await list()).find((x) => x.id === r.json.token_id);
  assert.equal(t.email, 'onboard@example.test');
  assert.equal(t.plan_type, 'chatgpt_pro');
  assert.equal(t.sora2_supported, true);
  assert.equal(t.sora2_remaining_count, 12);
  assert.equal(t.sora2_invite_code, acc.invite_code);
  assert.equal(t.remark, 'main');
  assert.equal(t.video_concurrency, 3);
  assert.equal(t.image_concurrency, -1);
  assert.equal(t.state, 'active');
  assert.equal(t.is_active, true);
  assert.equal(t.expiry_time, new Date(acc.access_token_exp * 1000).toISOString().replace('.000Z', 'Z'));
  // Secrets are masked unless asked for, and sealed in the database.
  assert.notEqual(t.token, acc.access_token);
  assert.match(t.token, /^eyJ\w{3}\.\.\.[\w-]{6}$/);
  const full = (await list('?reveal=1')).find((x) => x.id === r.json.token_id);
  assert.equal(full.token, acc.access_token);
  assert.equal(full.st, acc.session_token);
  assert.equal(full.rt, acc.refresh_token);
  const stored = d.sqlite(`SELECT token || '|' || st || '|' || rt FROM tokens WHERE id = ${r.json.token_id}`);
  // Compare against the plaintexts themselves: random base64 can spell "eyJ".
  for (const secret of [acc.access_token, acc.session_token, acc.refresh_token]) {
    assert.equal(stored.includes(secret.slice(0, 16)), false);
    assert.equal(stored.includes(secret.slice(-16)), false);
  }
  assert.match(stored, /^v1:[^|]+\|v1:[^|]+\|v1:[^|]+$/);
  assert.doesNotMatch(d.log(), new RegExp(acc.access_token.slice(-20)));
});

test('a null username is set up; an unactivated account is bootstrapped', async () => {
  await fake.clearJournal();
  const acc = await fake.account({ username: null, needs_bootstrap: true });
  const r = await add({ token: acc.access_token });
  assert.equal(r.status, 200, r.text);
  const paths = (await fake.journal()).entries.map((e) => `${e.method} ${e.path}`);
  assert.deepEqual(paths.slice(0, 5), ['GET /backend/me', 'GET /backend/billing/subscriptions',
    'GET /backend/project_y/invite/mine', 'GET /backend/m/bootstrap', 'GET /backend/project_y/invite/mine']);
  assert.ok(paths.includes('POST /backend/project_y/profile/username/check'));
  assert.equal(paths[paths.length - 1], 'POST /backend/project_y/profile/username/set');
  const t = (await list()).find((x) => x.id === r.json.token_id);
  assert.equal(t.sora2_supported, true);
  assert.match(t.username, /^[a-z]+\d+$/);
});

test('an account Sora 2 stays off for is stored as unsupported', async () => {
  const acc = await fake.account({ sora2_activated: false });
  const r = await add({ token: acc.access_token });
  assert.equal(r.status, 200, r.text);
  const t = (await list()).find((x) => x.id === r.json.token_id);
  assert.equal(t.sora2_supported, false);
  assert.equal(t.sora2_remaining_count, null);
});

test('onboarding failures answer 400 with the reason and store nothing', async () => {
  const before = (await list()).length;
  const cases = [
    [{ token: 'not-a-jwt' }, 400, /Invalid token: not a JWT access token/],
    [{ token: 'a.b' }, 400, /not a JWT/],
    [{ token: 'has space.x.y' }, 400, /blanks/],
    [{}, 400, /token \(the access token\) is required/],
    [{ token: 123 }, 400, /required/],
  ];
  for (const [body, status, re] of cases) {
    const r = await add(body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match(r.json.detail, re);
  }
  const expired = await fake.account({ expired: true });
  let r = await add({ token: expired.access_token });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /Token expired/);
  const billing = await fake.account({ billing_token_expired: true });
  r = await add({ token: billing.access_token });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /Adding the token failed: Token expired/);
  const region = await fake.account({ country_blocked: 'KP' });
  r = await add({ token: region.access_token });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /not available in this account's region \(KP\)/);
  const revoked = await fake.account({ revoked: true });
  r = await add({ token: revoked.access_token });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /Sora rejected the access token/);
  const bad = await add({ token: (await fake.account()).access_token, image_concurrency: 'lots' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.detail, /image_concurrency must be an integer/);
  const proxy = await add({ token: (await fake.account()).access_token, proxy_url: 'ftp://x' });
  assert.equal(proxy.status, 400);
  assert.equal((await list()).length, before);
});

test('an upstream that cannot be reached is a 502, not a hang', async () => {
  const acc = await fake.account();
  // libcurl retries once on a reused connection that died; drop both.
  await fake.arm({ route: 'GET /backend/me', drop: true, times: 2 });
  const r = await add({ token: acc.access_token });
  // On a fresh connection curl does not retry: the second drop is left.
  await fake.disarm();
  assert.equal(r.status, 502);
  assert.match(r.json.detail, /Sora unreachable/);
});

test('the same token twice is 409; concurrent adds store each token once', async () => {
  const acc = await fake.account();
  assert.equal((await add({ token: acc.access_token })).status, 200);
  const dup = await add({ token: acc.access_token });
  assert.equal(dup.status, 409);
  assert.match(dup.json.detail, /Token already exists \(email: .*, id \d+\)/);
  const accs = [];
  for (let i = 0; i < 10; i++) accs.push(await fake.account());
  const before = (await list()).length;
  // Every token is sent three times at once, over many connections.
  const all = await Promise.all(accs.flatMap((a) => [0, 1, 2].map(() => add({ token: a.access_token }))));
  const statuses = all.map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 200).length, 10, JSON.stringify(statuses));
  assert.equal(statuses.filter((s) => s === 409).length, 20);
  const after = await list();
  assert.equal(after.length, before + 10);
  assert.equal(new Set(after.map((t) => t.id)).size, after.length);
});

test('enable, disable, status, update and delete', async () => {
  const acc = await fake.account();
  const id = (await add({ token: acc.access_token })).json.token_id;
  const base = `/api/tokens/${id}`;
  let r = await request(d.base, 'POST', `${base}/disable`, { headers: H });
  assert.deepEqual(r.json, { success: true, message: 'Token disabled', is_active: 0 });
  let t = (await list()).find((x) => x.id === id);
  assert.equal(t.state, 'disabled');
  assert.equal(t.state_reason, 'disabled by the operator');
  assert.match(t.state_changed_at, /^\d{4}-\d\d-\d\dT/);
  r = await request(d.base, 'POST', `${base}/enable`, { headers: H });
  assert.deepEqual(r.json, { success: true, message: 'Token enabled', is_active: 1, error_count: 0 });
  r = await request(d.base, 'PUT', `${base}/status`, { headers: H, body: json({ is_active: false }) });
  assert.deepEqual(r.json, { success: true, message: 'Token status updated' });
  assert.equal((await list()).find((x) => x.id === id).is_active, false);
  r = await request(d.base, 'PUT', `${base}/status`, { headers: H, body: json({ is_active: 'yes' }) });
  assert.equal(r.status, 400);
  r = await request(d.base, 'PUT', base, { headers: H, body: json({ remark: 'renamed', image_enabled: false, image_concurrency: 2, st: 'new-st' }) });
  assert.deepEqual(r.json, { success: true, message: 'Token updated' });
  t = (await list('?reveal=true')).find((x) => x.id === id);
  assert.equal(t.remark, 'renamed');
  assert.equal(t.image_enabled, false);
  assert.equal(t.image_concurrency, 2);
  assert.equal(t.st, 'new-st');
  // A new AT re-reads its expiry.
  // Beyond the refresh window, so background upkeep leaves it alone.
  const minted = await fake.mint({ access_token: acc.access_token, lifetime_s: 3 * 86400 });
  r = await request(d.base, 'PUT', base, { headers: H, body: json({ token: minted.access_token }) });
  assert.equal(r.status, 200, r.text);
  t = (await list('?reveal=1')).find((x) => x.id === id);
  assert.equal(t.token, minted.access_token);
  assert.equal(t.expiry_time, new Date(minted.exp * 1000).toISOString().replace('.000Z', 'Z'));
  r = await request(d.base, 'PUT', base, { headers: H, body: json({}) });
  assert.equal(r.status, 400);
  r = await request(d.base, 'DELETE', base, { headers: H });
  assert.deepEqual(r.json, { success: true, message: 'Token deleted' });
  assert.equal((await list()).find((x) => x.id === id), undefined);
  for (const [m, p] of [['DELETE', base], ['POST', `${base}/enable`], ['PUT', `${base}/status`], ['PUT', base]]) {
    r = await request(d.base, m, p, { headers: H, body: json({ is_active: true, remark: 'x' }) });
    assert.equal(r.status, 404, `${m} ${p}`);
    assert.deepEqual(r.json, { detail: 'Token not found' });
  }
  assert.equal((await request(d.base, 'GET', '/api/tokens/abc', { headers: H })).status, 404);
  assert.equal((await request(d.base, 'GET', '/api/tokens')).status, 401);
});

test('testing a token refreshes its quota; a revoked one becomes invalid', async () => {
  const acc = await fake.account({ remaining: 9 });
  const id = (await add({ token: acc.access_token })).json.token_id;
  await fake.updateAccount({ access_token: acc.access_token, remaining: 4 });
  let r = await request(d.base, 'POST', `/api/tokens/${id}/test`, { headers: H });
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'success');
  assert.equal(r.json.sora2_remaining_count, 4);
  assert.equal((await list()).find((x) => x.id === id).sora2_remaining_count, 4);
  await fake.updateAccount({ access_token: acc.access_token, revoked: true });
  r = await request(d.base, 'POST', `/api/tokens/${id}/test`, { headers: H });
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'failed');
  assert.match(r.json.message, /Sora rejected the access token/);
  const t = (await list()).find((x) => x.id === id);
  assert.equal(t.state, 'invalid');
  assert.match(t.state_reason, /rejected/);
  // Sora takes it again: a test that finds it valid makes it active.
  await fake.updateAccount({ access_token: acc.access_token, revoked: false });
  r = await request(d.base, 'POST', `/api/tokens/${id}/test`, { headers: H });
  assert.equal(r.json.status, 'success');
  const back = (await list()).find((x) => x.id === id);
  assert.equal(back.state, 'active');
  assert.match(back.state_reason, /token test found it valid/);
  r = await request(d.base, 'POST', '/api/tokens/99999/test', { headers: H });
  assert.equal(r.status, 404);
  assert.equal(r.json.message, 'Token not found');
});

test('ST and RT convert to an AT; rotation, {} sessions and invalid_grant', async () => {
  const acc = await fake.account();
  let r = await request(d.base, 'POST', '/api/tokens/st2at', { headers: H, body: json({ st: acc.session_token }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.success, true);
  assert.equal(r.json.email, acc.email);
  assert.match(r.json.access_token, /^eyJ/);
  r = await request(d.base, 'POST', '/api/tokens/st2at', { headers: H, body: json({ st: 'unknown-session' }) });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /Failed to convert ST to AT: the session token is invalid or expired/);
  r = await request(d.base, 'POST', '/api/tokens/rt2at', { headers: H, body: json({ rt: acc.refresh_token }) });
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.access_token, /^eyJ/);
  assert.notEqual(r.json.refresh_token, acc.refresh_token);
  assert.ok(r.json.expires_in > 0);
  const rotated = r.json.refresh_token;
  r = await request(d.base, 'POST', '/api/tokens/rt2at', { headers: H, body: json({ rt: acc.refresh_token }) });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /Failed to convert RT to AT/);
  r = await request(d.base, 'POST', '/api/tokens/rt2at', { headers: H, body: json({ rt: rotated }) });
  assert.equal(r.status, 200);
  r = await request(d.base, 'POST', '/api/tokens/rt2at', { headers: H, body: json({}) });
  assert.equal(r.status, 400);
  assert.deepEqual(r.json, { detail: 'rt is required' });
});

test('the pool survives a restart and a kill -9 of the master', async () => {
  const acc = await fake.account({ email: 'durable@example.test' });
  const id = (await add({ token: acc.access_token, remark: 'keep me' })).json.token_id;
  // Acknowledged means committed: kill the whole daemon at once.
  process.kill(d.pid, 'SIGKILL');
  await d.exited;
  await sleep(300);
  d.allowedErrors.push(/control channel to the master closed/);
  await d.start();
  H = await adminLogin(d);
  const t = (await list('?reveal=1')).find((x) => x.id === id);
  assert.equal(t.remark, 'keep me');
  assert.equal(t.token, acc.access_token);
  assert.equal((await request(d.base, 'POST', `/api/tokens/${id}/test`, { headers: H })).json.status, 'success');
});
