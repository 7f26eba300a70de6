'use strict';
// Token scheduling seen from outside: per-token limits, the wait queue
// across workers, the reasons given when it times out, avoided tokens.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Daemon, request } = require('./lib/daemon');
const { startPool, stopPool } = require('./lib/fake');

const json = (o) => JSON.stringify(o);
let fake;
let d;
let H;
const acquire = (q) => request(d.base, 'POST', `/__test/acquire?${q}`, { timeout: 20000 });

before(async () => {
  ({ fake, d, H } = await startPool());
});
after(() => stopPool({ fake, d }));

test('an empty pool fails at once with the reason, not after the queue timeout', async () => {
  let r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 10 }) });
  assert.equal(r.status, 200);
  for (const kind of ['video', 'image']) {
    const t0 = Date.now();
    r = await acquire(`kind=${kind}`);
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'no_token_available');
    assert.match(r.json.error.message, new RegExp(`no ${kind} token is available: the pool has no usable token`));
    assert.ok(Date.now() - t0 < 1000, `${kind}: refused after ${Date.now() - t0} ms`);
  }
});

test('a per-token limit queues the next job until a lease comes back, across workers', async () => {
  const acc = await fake.account();
  const add = await request(d.base, 'POST', '/api/tokens', { headers: H, body: json({ token: acc.access_token, video_concurrency: 1 }) });
  const id = add.json.token_id;
  await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 10 }) });
  // Three jobs at once on a token that takes one: they run one after another.
  const t0 = Date.now();
  const rs = await Promise.all([0, 1, 2].map(() => acquire('kind=video&hold_ms=600')));
  const total = Date.now() - t0;
  for (const r of rs) {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.token_id, id);
  }
  const waits = rs.map((r) => r.json.waited_ms).sort((a, b) => a - b);
  assert.ok(waits[0] < 300, `first waited ${waits[0]}`);
  assert.ok(waits[1] >= 450, `second waited ${waits[1]}`);
  assert.ok(waits[2] >= 1000, `third waited ${waits[2]}`);
  assert.ok(total >= 1700, `all three in ${total} ms`);
  // Images are not limited on this token.
  const img = await Promise.all([0, 1, 2].map(() => acquire('kind=image&hold_ms=300')));
  assert.ok(img.every((r) => r.status === 200 && r.json.waited_ms < 250));
});

test('the reasons name every token that was passed over', async () => {
  await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 1 }) });
  const noSora = await fake.account({ sora2_activated: false });
  await request(d.base, 'POST', '/api/tokens', { headers: H, body: json({ token: noSora.access_token }) });
  const off = await fake.account();
  const offId = (await request(d.base, 'POST', '/api/tokens', { headers: H, body: json({ token: off.access_token }) })).json.token_id;
  await request(d.base, 'POST', `/api/tokens/${offId}/disable`, { headers: H });
  // Keep the limited token busy while asking for a video.
  const busy = acquire('kind=video&hold_ms=2500');
  await new Promise((r) => setTimeout(r, 200));
  const r = await acquire('kind=video');
  assert.equal(r.status, 503);
  assert.match(r.json.error.message, /3 tokens — /);
  assert.match(r.json.error.message, /1 disabled/);
  assert.match(r.json.error.message, /1 no Sora2/);
  assert.match(r.json.error.message, /1 busy/);
  assert.equal((await busy).status, 200);
});

test('a job does not get a token it asked to avoid, and fails at once without one', async () => {
  await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 10 }) });
  const tokens = (await request(d.base, 'GET', '/api/tokens', { headers: H })).json;
  const usable = tokens.find((t) => t.state === 'active' && t.sora2_supported);
  const t0 = Date.now();
  const r = await acquire(`kind=video&avoid=${usable.id}`);
  assert.equal(r.status, 503);
  assert.match(r.json.error.message, /all already tried by this job|disabled|no Sora2/);
  assert.ok(Date.now() - t0 < 1000, `refused after ${Date.now() - t0} ms`);
});

test('no token with the capability: a video job fails at once with the reasons', async () => {
  await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 10 }) });
  const tokens = (await request(d.base, 'GET', '/api/tokens', { headers: H })).json;
  const usable = tokens.find((t) => t.state === 'active' && t.sora2_supported);
  // Video generation turned off on the only Sora 2 token.
  let r = await request(d.base, 'PUT', `/api/tokens/${usable.id}`, { headers: H, body: json({ video_enabled: false }) });
  assert.equal(r.status, 200, r.text);
  const t0 = Date.now();
  r = await acquire('kind=video');
  assert.equal(r.status, 503);
  assert.match(r.json.error.message, /3 tokens — /);
  assert.match(r.json.error.message, /1 generation kind disabled/);
  assert.match(r.json.error.message, /1 no Sora2/);
  assert.ok(Date.now() - t0 < 1000, `refused after ${Date.now() - t0} ms`);
  r = await request(d.base, 'PUT', `/api/tokens/${usable.id}`, { headers: H, body: json({ video_enabled: true }) });
  assert.equal(r.status, 200, r.text);
});

test('waiters fail as soon as the pool changes so that no token can serve them', async () => {
  await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 10 }) });
  const tokens = (await request(d.base, 'GET', '/api/tokens', { headers: H })).json;
  const usable = tokens.find((t) => t.state === 'active' && t.sora2_supported);
  // The one video token is busy; two more jobs wait for it (in whichever
  // worker they land), then the operator disables it.
  const busy = acquire('kind=video&hold_ms=4000');
  await new Promise((r) => setTimeout(r, 200));
  const waiting = [acquire('kind=video'), acquire('kind=video')];
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  const off = await request(d.base, 'POST', `/api/tokens/${usable.id}/disable`, { headers: H });
  assert.equal(off.status, 200, off.text);
  for (const r of await Promise.all(waiting)) {
    assert.equal(r.status, 503);
    assert.match(r.json.error.message, /2 disabled/);
    assert.ok(Date.now() - t0 < 1500, `refused ${Date.now() - t0} ms after the change`);
  }
  // New jobs are refused at once too, while the old lease is still out.
  const t1 = Date.now();
  const r = await acquire('kind=video');
  assert.equal(r.status, 503);
  assert.ok(Date.now() - t1 < 1000);
  assert.equal((await busy).status, 200);
  await request(d.base, 'POST', `/api/tokens/${usable.id}/enable`, { headers: H });
});

test('a waiter in another worker gets a released token without waiting for a timer', async () => {
  await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ queue_timeout: 10 }) });
  // Several rounds of hold-then-wait: every wait ends within a short
  // interval of the release, whichever worker each job is in.
  const rs = await Promise.all([0, 1, 2, 3].map(() => acquire('kind=video&hold_ms=400')));
  const waits = rs.map((r) => { assert.equal(r.status, 200, r.text); return r.json.waited_ms; }).sort((a, b) => a - b);
  for (let i = 1; i < waits.length; i++) {
    const gap = waits[i] - waits[i - 1];
    assert.ok(gap >= 350 && gap < 700, `waits ${waits.join(', ')}`);
  }
});
