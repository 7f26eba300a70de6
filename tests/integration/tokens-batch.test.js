'use strict';
// POST /api/tokens/batch/enable, /disable, /delete, /test: the
// operator's actions on a selection, one call to the master each (the
// test: each token asked again, a few at once), answered per id
// (docs/admin-ui.md, "Server routes added for the UI"): each action and
// what it does to the rows and the shared table, unknown ids reported
// in their place, the bounds of the body, 10,000 tokens disabled and
// deleted in one call each (times printed), and a job in flight on a
// token disabled meanwhile going on to its end, as a single disable.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { request, waitFor, assertServing } = require('./lib/daemon');

const { json } = g;
const N = 10000;
let ctx;

before(async () => {
  ctx = await g.startGenPool({ workers: 2, poll: 100, sections: { limits: { max_tokens: String(N + 100) } } });
});

after(async () => {
  if (ctx) await stopPool(ctx);
});

const api = (method, p, body, timeout = 30000) => request(ctx.d.base, method, p,
  { headers: ctx.H, body: body === undefined ? undefined : json(body), timeout });
const tokens = async () => (await api('GET', '/api/tokens')).json;
const byId = async (id) => (await tokens()).find((t) => t.id === id);

test('enable, disable and delete, each id answered in order; unknown ids fail alone', async () => {
  const a = await g.addToken(ctx, { remark: 'batch a' });
  const b = await g.addToken(ctx, { remark: 'batch b' });
  const c = await g.addToken(ctx, { remark: 'batch c' });

  let r = await api('POST', '/api/tokens/batch/disable', { ids: [a.id, b.id] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { results: [{ id: a.id, ok: true }, { id: b.id, ok: true }], ok: 2, failed: 0 });
  let list = await tokens();
  assert.deepEqual(list.filter((t) => [a.id, b.id, c.id].includes(t.id)).map((t) => [t.id, t.state]).sort(),
    [[a.id, 'disabled'], [b.id, 'disabled'], [c.id, 'active']].sort());
  assert.equal(list.find((t) => t.id === a.id).state_reason, 'disabled by the operator');
  // The shared table follows: the pool's statistics count them out.
  const stats = (await api('GET', '/api/stats')).json;
  assert.equal(stats.states.disabled, 2);

  r = await api('POST', '/api/tokens/batch/enable', { ids: [b.id, 987654, a.id] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, {
    results: [{ id: b.id, ok: true }, { id: 987654, ok: false, detail: 'Token not found' }, { id: a.id, ok: true }],
    ok: 2, failed: 1,
  });
  list = await tokens();
  assert.ok([a.id, b.id].every((id) => list.find((t) => t.id === id).state === 'active'));
  assert.equal(list.find((t) => t.id === a.id).state_reason, 'enabled by the operator');

  // An id twice: the second delete finds nothing.
  r = await api('POST', '/api/tokens/batch/delete', { ids: [c.id, a.id, c.id] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, {
    results: [{ id: c.id, ok: true }, { id: a.id, ok: true }, { id: c.id, ok: false, detail: 'Token not found' }],
    ok: 2, failed: 1,
  });
  list = await tokens();
  assert.deepEqual(list.filter((t) => [a.id, b.id, c.id].includes(t.id)).map((t) => t.id), [b.id]);
  // Gone from the shared table too: a single route on it finds nothing.
  assert.equal((await api('POST', `/api/tokens/${a.id}/test`)).status, 404);

  r = await api('POST', '/api/tokens/batch/disable', { ids: [a.id, c.id] });
  assert.deepEqual(r.json, {
    results: [{ id: a.id, ok: false, detail: 'Token not found' }, { id: c.id, ok: false, detail: 'Token not found' }],
    ok: 0, failed: 2,
  });
  assert.equal((await api('POST', '/api/tokens/batch/delete', { ids: [b.id] })).json.ok, 1);
});

test('the body is bounded and checked', async () => {
  const workersBefore = ctx.d.workers();
  const detail = 'ids must be an array of 1 to 10000 token ids';
  const cases = [
    [{}, detail],
    [{ ids: [] }, detail],
    [{ ids: 'all' }, detail],
    [{ ids: Array.from({ length: N + 1 }, (_, i) => i + 1) }, detail],
    [{ ids: [1, 0] }, 'ids must hold positive integers (item 1 is not)'],
    [{ ids: ['1'] }, 'ids must hold positive integers (item 0 is not)'],
    [{ ids: [1.5] }, 'ids must hold positive integers (item 0 is not)'],
  ];
  for (const action of ['enable', 'disable', 'delete', 'test']) {
    for (const [body, want] of cases) {
      const r = await api('POST', `/api/tokens/batch/${action}`, body);
      assert.equal(r.status, 400, `${action} ${JSON.stringify(body).slice(0, 60)}: ${r.text}`);
      assert.deepEqual(r.json, { detail: want });
    }
    const anon = await request(ctx.d.base, 'POST', `/api/tokens/batch/${action}`, { body: json({ ids: [1] }) });
    assert.equal(anon.status, 401);
    assert.equal((await api('GET', `/api/tokens/batch/${action}`)).status, 405);
  }
  const notJson = await request(ctx.d.base, 'POST', '/api/tokens/batch/disable', { headers: ctx.H, body: '{"ids":[1' });
  assert.equal(notJson.status, 400);
  assert.equal((await api('POST', '/api/tokens/batch/purge', { ids: [1] })).status, 404);
  await assertServing(ctx.d, workersBefore);
});

test('test: each token asked again, its outcome stored, one result per id', async () => {
  const good = await g.addToken(ctx, {}, { remaining: 9 });
  const bad = await g.addToken(ctx);
  const back = await g.addToken(ctx);
  await ctx.fake.updateAccount({ access_token: good.at, remaining: 4 });
  await ctx.fake.updateAccount({ access_token: bad.at, revoked: true });
  // Made invalid by a test, then Sora takes it again.
  await ctx.fake.updateAccount({ access_token: back.at, revoked: true });
  assert.equal((await api('POST', `/api/tokens/${back.id}/test`)).json.status, 'failed');
  assert.equal((await byId(back.id)).state, 'invalid');
  await ctx.fake.updateAccount({ access_token: back.at, revoked: false });

  const r = await api('POST', '/api/tokens/batch/test', { ids: [good.id, 424242, bad.id, back.id] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ok, 2);
  assert.equal(r.json.failed, 2);
  assert.deepEqual(r.json.results.map((x) => [x.id, x.ok]), [[good.id, true], [424242, false], [bad.id, false], [back.id, true]]);
  assert.equal(r.json.results[0].email, good.acc.email);
  assert.equal(r.json.results[1].detail, 'Token not found');
  assert.match(r.json.results[2].detail, /Sora rejected the access token/);
  assert.equal((await byId(good.id)).sora2_remaining_count, 4, 'what Sora said is stored');
  assert.equal((await byId(bad.id)).state, 'invalid');
  await waitFor(async () => (await byId(back.id)).state === 'active', { what: 'the token back to active' });
  const tooMany = await api('POST', '/api/tokens/batch/test', { ids: Array.from({ length: 1001 }, (_, i) => i + 1) });
  assert.equal(tooMany.status, 400);
  assert.deepEqual(tooMany.json, { detail: 'ids must be an array of 1 to 1000 token ids to test' });
  assert.equal((await api('POST', '/api/tokens/batch/delete', { ids: [good.id, bad.id, back.id] })).json.ok, 3);
});

test('a job in flight on a token disabled by a batch goes on to its end', async () => {
  const t = await g.addToken(ctx, { video_concurrency: 2 }, { remaining: null });
  const prompt = `batch disable under a #slow job [${Date.now()}]`;
  const q = prompt.replace(/'/g, "''");
  const job = g.chat(ctx.d, { model: 'sora-video-10s', messages: g.user(prompt), stream: true }, { timeout: 60000 });
  await waitFor(() => ctx.d.sqlite(`SELECT status FROM tasks WHERE prompt = '${q}'`) === 'running', { what: 'running' });
  await waitFor(async () => (await byId(t.id)).video_inflight === 1, { what: 'the lease in the list' });
  const r = await api('POST', '/api/tokens/batch/disable', { ids: [t.id] });
  assert.deepEqual(r.json, { results: [{ id: t.id, ok: true }], ok: 1, failed: 0 });
  const row = await byId(t.id);
  assert.equal(row.state, 'disabled');
  assert.equal(row.video_inflight, 1, 'the lease is kept');
  const s = g.parseStream(await job);
  assert.equal(s.error, undefined, JSON.stringify(s.error));
  assert.equal(s.content.type, 'video');
  assert.equal(ctx.d.sqlite(`SELECT status || '|' || token_id FROM tasks WHERE prompt = '${q}'`), `succeeded|${t.id}`);
  await waitFor(async () => (await byId(t.id)).video_inflight === 0, { what: 'the lease given back' });
  // Disabled, it takes no new job: with nothing else, none runs.
  assert.equal((await api('POST', '/api/admin/config', { queue_timeout: 0 })).status, 200);
  const next = g.parseStream(await g.chat(ctx.d, { model: 'sora-video-10s', messages: g.user('after the batch'), stream: true }));
  assert.equal(next.error.code, 'no_available_token');
  assert.equal((await api('POST', '/api/tokens/batch/delete', { ids: [t.id] })).json.ok, 1);
});

test(`${N} tokens disabled, enabled and deleted in one call each`, async () => {
  const items = [];
  for (let i = 0; i < N; i += 2500) {
    const accs = await ctx.fake.account({ count: 2500, email: `tb${i}-{n}@example.test`, remaining: 3 });
    for (const a of accs) items.push({ email: a.email, access_token: a.access_token });
  }
  const imp = await api('POST', '/api/tokens/import', { tokens: items }, 600000);
  assert.equal(imp.status, 200, imp.text.slice(0, 300));
  assert.equal(imp.json.added, N, imp.text.slice(0, 300));
  const ids = (await tokens()).map((t) => t.id);
  assert.equal(ids.length, N);
  for (const action of ['disable', 'enable', 'delete']) {
    const t0 = Date.now();
    const r = await api('POST', `/api/tokens/batch/${action}`, { ids }, 120000);
    const ms = Date.now() - t0;
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.ok, N);
    assert.equal(r.json.failed, 0);
    assert.equal(r.json.results.length, N);
    assert.deepEqual(r.json.results.map((x) => x.id), ids);
    process.stdout.write(`# batch ${action} of ${N} tokens: ${ms} ms\n`);
    const stats = (await api('GET', '/api/stats')).json;
    if (action === 'disable') {
      assert.equal(stats.states.disabled, N);
      assert.equal(stats.active_tokens, 0);
    } else if (action === 'enable') {
      assert.equal(stats.states.active, N);
      assert.equal(stats.active_tokens, N);
    } else {
      assert.equal(stats.total_tokens, 0);
      assert.deepEqual(await tokens(), []);
    }
  }
});
