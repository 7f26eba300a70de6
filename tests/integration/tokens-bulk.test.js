'use strict';
// Import and export, Sora 2 activation, pool statistics.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Daemon, request } = require('./lib/daemon');
const { startPool, stopPool } = require('./lib/fake');

const json = (o) => JSON.stringify(o);
let fake;
let d;
let H;

before(async () => {
  ({ fake, d, H } = await startPool());
});
after(() => stopPool({ fake, d }));

const list = async () => (await request(d.base, 'GET', '/api/tokens?reveal=1', { headers: H })).json;

test('importing 1,000 tokens adds each once; a second import updates them', async () => {
  const accs = await fake.account({ count: 1000, email: 'bulk{n}@example.test', remaining: 5 });
  const items = accs.map((a, i) => ({
    email: a.email, access_token: a.access_token, session_token: a.session_token,
    refresh_token: a.refresh_token, is_active: i % 10 !== 0, video_concurrency: 3,
  }));
  const t0 = Date.now();
  const r = await request(d.base, 'POST', '/api/tokens/import', { headers: H, body: json({ tokens: items }), timeout: 120000 });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.deepEqual({ added: r.json.added, updated: r.json.updated, failed: r.json.failed }, { added: 1000, updated: 0, failed: 0 });
  assert.equal(r.json.message, 'Import completed: 1000 added, 0 updated, 0 failed');
  const ms = Date.now() - t0;
  let tokens = await list();
  assert.equal(tokens.length, 1000);
  assert.equal(new Set(tokens.map((t) => t.email)).size, 1000);
  assert.equal(tokens.filter((t) => t.state === 'disabled').length, 100);
  assert.ok(tokens.every((t) => t.video_concurrency === 3 && t.sora2_remaining_count === 5));
  const byEmail = new Map(tokens.map((t) => [t.email, t]));
  assert.equal(byEmail.get('bulk7@example.test').token, accs.find((a) => a.email === 'bulk7@example.test').access_token);
  // Again, with new ATs for a few and everything active: updates only.
  // Beyond the refresh window, so background upkeep leaves it alone.
  const fresh = await fake.mint({ email: accs[0].email, lifetime_s: 3 * 86400 });
  items[0].access_token = fresh.access_token;
  for (const it of items) it.is_active = true;
  const again = await request(d.base, 'POST', '/api/tokens/import', { headers: H, body: json({ tokens: items }), timeout: 120000 });
  assert.deepEqual({ added: again.json.added, updated: again.json.updated, failed: again.json.failed }, { added: 0, updated: 1000, failed: 0 });
  tokens = await list();
  assert.equal(tokens.length, 1000);
  assert.equal(tokens.filter((t) => t.state === 'active').length, 1000);
  assert.equal(tokens.find((t) => t.email === accs[0].email).token, fresh.access_token);
  process.stdout.write(`# import of 1000 tokens took ${ms} ms\n`);
});

test('bad import items are reported one by one; the rest goes in', async () => {
  const good = await fake.account({ email: 'good-import@example.test' });
  const blocked = await fake.account({ email: 'blocked-import@example.test', country_blocked: 'IR' });
  const r = await request(d.base, 'POST', '/api/tokens/import', {
    headers: H,
    body: json({ tokens: [
      { email: good.email, access_token: good.access_token },
      { email: 'x@example.test', access_token: 'garbage' },
      { access_token: good.access_token },
      'not an object',
      { email: blocked.email, access_token: blocked.access_token },
    ] }),
  });
  assert.equal(r.status, 200);
  assert.equal(r.json.success, false);
  assert.equal(r.json.added, 1);
  assert.equal(r.json.failed, 4);
  assert.deepEqual(r.json.errors.map((e) => e.index).sort(), [1, 2, 3, 4]);
  assert.match(r.json.errors.find((e) => e.index === 1).detail, /not a JWT/);
  assert.match(r.json.errors.find((e) => e.index === 2).detail, /email is required/);
  assert.match(r.json.errors.find((e) => e.index === 4).detail, /region \(IR\)/);
  for (const body of [{}, { tokens: [] }, { tokens: 'x' }]) {
    const e = await request(d.base, 'POST', '/api/tokens/import', { headers: H, body: json(body) });
    assert.equal(e.status, 400);
  }
});

test('export gives back what import takes', async () => {
  const r = await request(d.base, 'GET', '/api/tokens/export', { headers: H });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-disposition'], /^attachment; filename="tokens_\d{4}-\d\d-\d\d\.json"$/);
  assert.equal(r.headers['cache-control'], 'no-store');
  const tokens = await list();
  assert.equal(r.json.length, tokens.length);
  const one = r.json.find((t) => t.email === 'bulk3@example.test');
  assert.deepEqual(Object.keys(one).sort(), ['access_token', 'email', 'group', 'image_concurrency', 'image_enabled',
    'is_active', 'refresh_token', 'session_token', 'video_concurrency', 'video_enabled']);
  assert.equal(one.group, null);
  assert.equal(one.access_token, tokens.find((t) => t.email === 'bulk3@example.test').token);
  assert.match(one.refresh_token, /./);
  const back = await request(d.base, 'POST', '/api/tokens/import', { headers: H, body: json({ tokens: r.json.slice(0, 20) }) });
  assert.equal(back.json.updated, 20);
  assert.equal(back.json.added, 0);
});

test('the token group goes out with the export and comes back with the import', async () => {
  const byEmail = async (e) => (await list()).find((t) => t.email === e);
  const put = (id, body) => request(d.base, 'PUT', `/api/tokens/${id}`, { headers: H, body: json(body) });
  const a = await byEmail('bulk4@example.test');
  const b = await byEmail('bulk5@example.test');
  assert.equal((await put(a.id, { group: 'blue' })).status, 200);
  const exp = async () => (await request(d.base, 'GET', '/api/tokens/export', { headers: H })).json;
  let file = await exp();
  const ea = file.find((t) => t.email === a.email);
  const eb = file.find((t) => t.email === b.email);
  assert.equal(ea.group, 'blue');
  assert.equal(eb.group, null);
  // Another state, then the file back: the exported groups return.
  assert.equal((await put(a.id, { group: '' })).status, 200);
  assert.equal((await put(b.id, { group: 'red' })).status, 200);
  assert.equal((await byEmail(a.email)).group, null);
  let r = await request(d.base, 'POST', '/api/tokens/import', { headers: H, body: json({ tokens: [ea, eb] }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.updated, 2, r.text);
  assert.equal((await byEmail(a.email)).group, 'blue');
  assert.equal((await byEmail(b.email)).group, null);
  file = await exp();
  assert.equal(file.find((t) => t.email === a.email).group, 'blue');
  // An item without the field leaves the group; a bad group is that item's error.
  const { group, ...bare } = ea;
  assert.equal(group, 'blue');
  r = await request(d.base, 'POST', '/api/tokens/import', { headers: H, body: json({ tokens: [bare,
    Object.assign({}, eb, { group: 'no spaces allowed' })] }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.updated, 1, r.text);
  assert.equal(r.json.failed, 1, r.text);
  assert.match(JSON.stringify(r.json), /group must be 1\.\.64 characters/);
  assert.equal((await byEmail(a.email)).group, 'blue');
  assert.equal((await byEmail(b.email)).group, null);
  assert.equal((await put(a.id, { group: '' })).status, 200);
});

test('activating Sora 2 with an invite code', async () => {
  const acc = await fake.account({ sora2_activated: false, email: 'invitee@example.test' });
  const add = await request(d.base, 'POST', '/api/tokens', { headers: H, body: json({ token: acc.access_token }) });
  const id = add.json.token_id;
  assert.equal((await list()).find((t) => t.id === id).sora2_supported, false);
  let r = await request(d.base, 'POST', `/api/tokens/${id}/sora2/activate`, { headers: H });
  assert.equal(r.status, 400);
  assert.deepEqual(r.json, { detail: 'invite_code is required' });
  await fake.clearJournal();
  r = await request(d.base, 'POST', `/api/tokens/${id}/sora2/activate?invite_code=FAKEINVITE`, { headers: H });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.success, true);
  assert.equal(r.json.message, 'Sora2 activated successfully');
  assert.equal(r.json.already_accepted, false);
  assert.match(r.json.invite_code, /^[A-Z0-9]+$/);
  const accept = (await fake.journal()).entries.find((e) => e.path === '/backend/project_y/invite/accept');
  assert.deepEqual(accept.body, { invite_code: 'FAKEINVITE' });
  assert.match(accept.headers.cookie, /^oai-did=[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const t = (await list()).find((x) => x.id === id);
  assert.equal(t.sora2_supported, true);
  assert.equal(t.sora2_invite_code, r.json.invite_code);
  r = await request(d.base, 'POST', '/api/tokens/999999/sora2/activate?invite_code=X', { headers: H });
  assert.equal(r.status, 404);
});

test('statistics count tokens by state', async () => {
  const r = await request(d.base, 'GET', '/api/stats', { headers: H });
  assert.equal(r.status, 200);
  const tokens = await list();
  assert.equal(r.json.total_tokens, tokens.length);
  assert.equal(r.json.states.active + r.json.states.disabled + r.json.states.invalid
    + r.json.states.expired + r.json.states.cooling, tokens.length);
  assert.equal(r.json.active_tokens, tokens.filter((t) => t.state === 'active').length);
  assert.equal(r.json.today, new Date().toISOString().slice(0, 10));
  for (const k of ['total_images', 'total_videos', 'total_errors', 'today_images', 'today_videos', 'today_errors']) {
    assert.equal(r.json[k], 0, k);
  }
  assert.equal((await request(d.base, 'GET', '/api/stats')).status, 401);
});
