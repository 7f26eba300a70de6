'use strict';
// Webhooks (docs/webhooks.md): endpoints in the admin API, events at the
// end of video and image jobs signed as Standard Webhooks (verified here
// with Node's own HMAC), delivered from the durable outbox: retried on a
// 500 and on a receiver that takes longer than 5 s, made after a restart
// and after the master's kill -9, never to a disabled endpoint, never to
// a private address unless [webhooks] allow_private says so.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { Daemon, request, waitFor, adminLogin, pidAlive, AUTH, assertServing } = require('./lib/daemon');
const { startFake } = require('./lib/fake');
const g = require('./lib/gen');

let fake;
let d;
let H;
let recv;
let nonce = 0;
const tag = (s) => `${s} [w${++nonce}]`;
const json = (o) => JSON.stringify(o);
const JOB = /^job_[0-9a-f]{24}$/;
const MSG = /^msg_[0-9a-f]{24}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const SECRET = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

// A receiver on loopback. Each path is one endpoint; `plan[path]` is a
// list of behaviours used in turn (the last one repeats): a status
// code, 'hang' (never answers; the socket's close is noted), or an async
// function (req) => status.
function startReceiver() {
  const got = {};
  const plan = {};
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const list = got[req.url] || (got[req.url] = []);
      const entry = { at: Date.now(), method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      list.push(entry);
      const steps = plan[req.url] || [200];
      const step = steps[Math.min(list.length - 1, steps.length - 1)];
      if (step === 'hang') {
        res.on('close', () => { entry.closedAt = Date.now(); });
        return;
      }
      const status = typeof step === 'function' ? await step(entry) : step;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => {
    const base = `http://127.0.0.1:${srv.address().port}`;
    resolve({ got, plan, base, url: (p) => base + p, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) });
  }));
}

const api = (method, p, body, headers = H) => request(d.base, method, p, {
  headers: Object.assign({ 'Content-Type': 'application/json' }, headers),
  body: body === undefined ? undefined : (typeof body === 'string' ? body : json(body)),
});

async function createHook(body) {
  const r = await api('POST', '/api/webhooks', body);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function deliveries(id, q = '') {
  const r = await api('GET', `/api/webhooks/${id}/deliveries${q}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// Waits until endpoint `id` has a delivery that `pred` accepts.
function waitDelivery(id, pred, what, timeout = 15000) {
  return waitFor(async () => (await deliveries(id)).find(pred), { timeout, what });
}

// Waits until the receiver has `n` requests on `path`.
function waitGot(path, n = 1, timeout = 15000) {
  return waitFor(() => (recv.got[path] || []).length >= n && recv.got[path], { timeout, what: `${n} requests on ${path}` });
}

// Checks a received request as Standard Webhooks says, with Node's own
// HMAC: returns the parsed body. `previous`: the secret a rotation left
// signing too (its signature follows the new one's).
function verify(secret, entry, previous) {
  assert.equal(entry.method, 'POST');
  assert.match(entry.headers['content-type'], /^application\/json/);
  const id = entry.headers['webhook-id'];
  const ts = entry.headers['webhook-timestamp'];
  assert.match(id, MSG);
  assert.match(ts, /^\d+$/);
  assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60, `timestamp ${ts} is now`);
  const mac = (s) => crypto.createHmac('sha256', Buffer.from(s.slice('whsec_'.length), 'base64'))
    .update(`${id}.${ts}.${entry.body}`).digest('base64');
  const want = [secret, previous].filter(Boolean).map((s) => `v1,${mac(s)}`).join(' ');
  assert.equal(entry.headers['webhook-signature'], want);
  const body = JSON.parse(entry.body);
  assert.deepEqual(Object.keys(body), ['id', 'object', 'type', 'created_at', 'data']);
  assert.equal(body.id, id);
  assert.equal(body.object, 'event');
  assert.ok(Number.isInteger(body.created_at) && Math.abs(body.created_at - Date.now() / 1000) < 120);
  assert.deepEqual(Object.keys(body.data), ['id']);
  return body;
}

const DELIVERY_KEYS = ['attempts', 'created_at', 'delivered_at', 'event_id', 'event_type', 'id', 'job_id',
  'last_attempt_at', 'last_error', 'last_status', 'next_attempt_at', 'state'];

async function startDaemon() {
  fake = await startFake();
  const conf = {
    server: { workers: '2' },
    upstream: Object.assign({}, fake.conf.upstream, { poll_interval_ms: '50', fetch_private_urls: 'yes' }),
    // Retries after about a second: the back-off's base is a setting.
    webhooks: { allow_private: 'no', retry_base: '1' },
  };
  d = await new Daemon({ conf, allowedErrors: [/control channel to the master closed/, /killed by signal 9/] }).start();
  H = await adminLogin(d);
  const r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ quota_refresh_interval: 0 }) });
  assert.equal(r.status, 200, r.text);
  const acc = await fake.account({ remaining: null, max_concurrent: 0 });
  const t = await api('POST', '/api/tokens', { token: acc.access_token, image_concurrency: 0, video_concurrency: 0 });
  assert.equal(t.status, 200, t.text);
}

// Stops the daemon (SIGTERM) or kills its master (SIGKILL), checks what
// that run logged, then starts it again on the same data directory.
async function restart(signal, between = () => {}) {
  const workers = d.workers();
  if (signal === 'SIGKILL') {
    d.proc.kill('SIGKILL');
    await d.exited;
  } else {
    assert.equal((await d.stop(signal)).code, 0);
  }
  await waitFor(() => workers.every((p) => !pidAlive(p)), { what: 'the workers gone' });
  assert.deepEqual(d.unexpectedErrors(), []);
  await between();
  await d.start();
  H = await adminLogin(d);
}

before(async () => {
  recv = await startReceiver();
  await startDaemon();
});

after(async () => {
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
  await fake.close();
  await recv.close();
});

test('a private receiver is refused until [webhooks] allow_private allows it; the secret is shown once', async () => {
  const hook = await createHook({ url: recv.url('/private') });
  assert.deepEqual(Object.keys(hook).sort(), ['created_at', 'enabled', 'event_types', 'id', 'previous_secret_expires_at', 'secret', 'updated_at', 'url']);
  assert.match(hook.secret, SECRET);
  assert.ok(Buffer.from(hook.secret.slice(6), 'base64').length >= 24);
  assert.equal(hook.url, recv.url('/private'));
  assert.deepEqual(hook.event_types, ['video.completed', 'video.failed', 'image.completed', 'image.failed']);
  assert.equal(hook.enabled, true);
  assert.match(hook.created_at, ISO);
  const list = await api('GET', '/api/webhooks');
  assert.equal(list.status, 200);
  const listed = list.json.find((h) => h.id === hook.id);
  const { secret, ...shown } = hook;
  assert.deepEqual(listed, shown);
  assert.ok(!list.text.includes(secret.slice(6)), 'GET never shows the secret');
  assert.ok(!d.log().includes(secret.slice(6)), 'nor does the log');
  assert.ok(!d.sqlite('SELECT secret FROM webhook_endpoints').includes(secret.slice(6)), 'sealed at rest');

  const t = await api('POST', `/api/webhooks/${hook.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.deepEqual(Object.keys(t.json).sort(), DELIVERY_KEYS);
  assert.equal(t.json.event_type, 'webhook.test');
  assert.equal(t.json.state, 'pending');
  assert.equal(t.json.job_id, null);
  const refused = await waitDelivery(hook.id, (x) => x.id === t.json.id && x.attempts >= 2, 'two refused attempts');
  assert.equal(refused.state, 'pending');
  assert.equal(refused.last_status, null);
  assert.equal(refused.last_error, 'the URL points at a private address');
  assert.match(refused.next_attempt_at, ISO);
  assert.equal(recv.got['/private'], undefined, 'no packet reached the private receiver');

  // The operator allows it: the same delivery goes out.
  d.opts.conf.webhooks = { allow_private: 'yes', retry_base: '1' };
  d.writeConf();
  process.kill(d.pid, 'SIGHUP');
  const [entry] = await waitGot('/private');
  const body = verify(secret, entry);
  assert.equal(body.type, 'webhook.test');
  assert.equal(body.id, t.json.event_id);
  assert.deepEqual(body.data, { id: null });
  const done = await waitDelivery(hook.id, (x) => x.id === t.json.id && x.state === 'delivered', 'delivered');
  assert.equal(done.last_status, 200);
  assert.equal(done.last_error, null);
  assert.equal(done.next_attempt_at, null);
  assert.match(done.delivered_at, ISO);
  assert.ok(done.attempts >= 3);
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

test('video and image jobs end in signed video.completed / image.completed; subscriptions filter', async () => {
  const all = await createHook({ url: recv.url('/all') });
  const videoOnly = await createHook({ url: recv.url('/video-only'), event_types: ['video.completed'] });
  assert.deepEqual(videoOnly.event_types, ['video.completed']);

  const v = await request(d.base, 'POST', '/v1/videos', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ prompt: tag('a webhook video'), model: 'sora-2' }),
  });
  assert.equal(v.status, 200, v.text);
  assert.equal(v.json.status, 'queued');
  const videoId = v.json.id;
  assert.match(videoId, JOB);

  const imagePrompt = tag('a webhook image');
  const img = await request(d.base, 'POST', '/v1/images/generations', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ prompt: imagePrompt }), timeout: 30000,
  });
  assert.equal(img.status, 200, img.text);
  const imageId = d.sqlite(`SELECT job_id FROM tasks WHERE prompt = '${imagePrompt}'`);
  assert.match(imageId, JOB);

  const got = await waitGot('/all', 2, 30000);
  const bodies = got.map((e) => verify(all.secret, e));
  const byType = Object.fromEntries(bodies.map((b) => [b.type, b]));
  assert.deepEqual(Object.keys(byType).sort(), ['image.completed', 'video.completed']);
  assert.deepEqual(byType['video.completed'].data, { id: videoId });
  assert.deepEqual(byType['image.completed'].data, { id: imageId });
  const vid = await request(d.base, 'GET', `/v1/videos/${videoId}`, { headers: AUTH });
  assert.equal(vid.json.status, 'completed', 'the event came once the video was completed');

  const [only] = await waitGot('/video-only', 1);
  const ob = verify(videoOnly.secret, only);
  assert.equal(ob.type, 'video.completed');
  assert.deepEqual(ob.data, { id: videoId });
  assert.equal(ob.id, byType['video.completed'].id, 'one event, one id, whichever endpoint gets it');
  assert.notEqual(byType['image.completed'].id, ob.id);

  const list = await deliveries(all.id);
  assert.equal(list.length, 2);
  assert.ok(list[0].id > list[1].id, 'newest first');
  for (const x of list) {
    assert.deepEqual(Object.keys(x).sort(), DELIVERY_KEYS);
    assert.equal(x.state, 'delivered');
    assert.equal(x.attempts, 1);
    assert.equal(x.last_status, 200);
    assert.equal(x.last_error, null);
    assert.match(x.event_id, MSG);
    assert.match(x.created_at, ISO);
    assert.match(x.last_attempt_at, ISO);
    assert.match(x.delivered_at, ISO);
  }
  assert.deepEqual(list.map((x) => [x.event_type, x.job_id]).sort(),
    [['image.completed', imageId], ['video.completed', videoId]]);
  assert.equal((await deliveries(all.id, '?limit=1')).length, 1);
  assert.equal((await deliveries(videoOnly.id)).length, 1, 'the image event is not for it');
  for (const h of [all, videoOnly]) assert.equal((await api('DELETE', `/api/webhooks/${h.id}`)).status, 200);
});

test('failed jobs: video.failed for a content-policy refusal, image.failed for an upstream failure', async () => {
  const hook = await createHook({ url: recv.url('/failed'), event_types: ['video.failed', 'image.failed'] });
  const v = await request(d.base, 'POST', '/v1/videos', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ prompt: tag('#reject this video'), model: 'sora-2' }),
  });
  assert.equal(v.status, 200, v.text);
  const imagePrompt = tag('#fail this image');
  const img = await request(d.base, 'POST', '/v1/images/generations', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ prompt: imagePrompt }), timeout: 30000,
  });
  assert.equal(img.status, 502, img.text);
  const imageId = d.sqlite(`SELECT job_id FROM tasks WHERE prompt = '${imagePrompt}'`);
  const got = await waitGot('/failed', 2, 30000);
  const byType = Object.fromEntries(got.map((e) => verify(hook.secret, e)).map((b) => [b.type, b]));
  assert.deepEqual(Object.keys(byType).sort(), ['image.failed', 'video.failed']);
  assert.deepEqual(byType['video.failed'].data, { id: v.json.id });
  assert.deepEqual(byType['image.failed'].data, { id: imageId });
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

// The row of the job whose prompt is `prompt`: job_id|status|error_code|worker_pid.
const rowOf = (prompt) => d.sqlite(`SELECT job_id || '|' || status || '|' || COALESCE(error_code, '') || '|'
  || COALESCE(worker_pid, '') FROM tasks WHERE prompt = '${prompt}'`).split('|');

test('rows closed in bulk and cancelled jobs: worker_died, interrupted and a client that left end in *.failed', async () => {
  const hook = await createHook({ url: recv.url('/bulk'), event_types: ['video.failed', 'image.failed'] });
  const events = async (n) => (await waitGot('/bulk', n, 30000)).map((e) => verify(hook.secret, e));
  // Submissions of these jobs hang: Sora never takes them.
  const stuck = tag('#stuck image');
  const r = await g.fakeCall(fake, 'POST', '/__fake/arm',
    { route: 'POST /backend/video_gen', hang: true, times: -1, match: { body_contains: '#stuck' } });
  assert.ok(r && r.id !== undefined, json(r));
  const image = (prompt) => request(d.base, 'POST', '/v1/images/generations', {
    headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH), body: json({ prompt }), timeout: 30000,
  }).catch((e) => e);
  const pending = image(stuck);
  const [job1, , , pid] = await waitFor(() => { const x = rowOf(stuck); return x[3] ? x : null; }, { what: 'the stuck job has a worker' });
  process.kill(Number(pid), 'SIGKILL');
  await pending;
  const [first] = await events(1);
  assert.equal(first.type, 'image.failed');
  assert.deepEqual(first.data, { id: job1 });
  assert.deepEqual(rowOf(stuck).slice(1, 3), ['failed', 'worker_died']);

  // The master killed: the next start closes the row as interrupted.
  const stuck2 = tag('#stuck image again');
  const pending2 = image(stuck2);
  const [job2] = await waitFor(() => { const x = rowOf(stuck2); return x[3] ? x : null; }, { what: 'the second stuck job has a worker' });
  await restart('SIGKILL', () => pending2);
  const second = (await events(2))[1];
  assert.equal(second.type, 'image.failed');
  assert.deepEqual(second.data, { id: job2 });
  assert.deepEqual(rowOf(stuck2).slice(1, 3), ['failed', 'interrupted']);
  await g.disarm(fake);

  // A client that leaves cancels its job: video.failed.
  const slow = tag('a video nobody waits for #slow');
  const ac = new AbortController();
  const gone = fetch(`${d.base}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal, headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
    body: json({ model: 'sora-video-10s', messages: g.user(slow), stream: true }),
  }).then((res) => res.body.getReader().read()).catch((e) => e);
  const [job3] = await waitFor(() => { const x = rowOf(slow); return x[1] === 'running' ? x : null; }, { what: 'the video running' });
  ac.abort();
  await gone;
  const third = (await events(3))[2];
  assert.equal(third.type, 'video.failed');
  assert.deepEqual(third.data, { id: job3 });
  assert.equal(rowOf(slow)[1], 'cancelled');
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

test('a receiver answering 500 is retried with the same event and a fresh signature', async () => {
  const hook = await createHook({ url: recv.url('/flaky') });
  let seen;
  recv.plan['/flaky'] = [500, async () => {
    // The second attempt is under way: the first one's outcome is recorded.
    seen = (await deliveries(hook.id))[0];
    return 200;
  }];
  const t = await api('POST', `/api/webhooks/${hook.id}/test`);
  const done = await waitDelivery(hook.id, (x) => x.state === 'delivered', 'delivered after a 500');
  const got = recv.got['/flaky'];
  assert.equal(got.length, 2);
  const [b1, b2] = got.map((e) => verify(hook.secret, e));
  assert.deepEqual(b1, b2, 'the same event both times');
  assert.equal(got[0].headers['webhook-id'], got[1].headers['webhook-id']);
  assert.equal(b1.id, t.json.event_id);
  assert.ok(got[1].at - got[0].at >= 400, `the retry waited (${got[1].at - got[0].at} ms)`);
  assert.equal(seen.state, 'pending');
  assert.equal(seen.attempts, 2);
  assert.equal(seen.last_status, 500);
  assert.equal(seen.last_error, 'the receiver answered 500');
  assert.equal(done.attempts, 2);
  assert.equal(done.last_status, 200);
  assert.equal(done.last_error, null);
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

test('a receiver that takes longer than 5 s counts as failed and is retried', async () => {
  const hook = await createHook({ url: recv.url('/slow') });
  let seen;
  recv.plan['/slow'] = ['hang', async () => {
    seen = (await deliveries(hook.id))[0];
    return 204;
  }];
  await api('POST', `/api/webhooks/${hook.id}/test`);
  const done = await waitDelivery(hook.id, (x) => x.state === 'delivered', 'delivered after a timeout', 20000);
  const got = recv.got['/slow'];
  assert.equal(got.length, 2);
  const waited = got[0].closedAt - got[0].at;
  assert.ok(waited >= 4800 && waited < 6500, `the first attempt was abandoned at 5 s (${waited} ms)`);
  assert.equal(seen.attempts, 2);
  assert.equal(seen.last_status, null);
  assert.equal(seen.last_error, 'no answer within 5000 ms');
  assert.equal(done.attempts, 2);
  assert.equal(done.last_status, 204);
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

test('a retry due while the daemon is stopped is made after the restart', async () => {
  const hook = await createHook({ url: recv.url('/restart') });
  let up = false;
  recv.plan['/restart'] = [async () => (up ? 200 : 503)];
  await api('POST', `/api/webhooks/${hook.id}/test`);
  await waitDelivery(hook.id, (x) => x.last_status === 503, 'a failed attempt');
  let restarted;
  await restart('SIGTERM', () => {
    const pending = d.sqlite(`SELECT state || '|' || (next_attempt_ms IS NOT NULL) FROM webhook_deliveries WHERE endpoint_id = ${hook.id}`);
    assert.equal(pending, 'pending|1');
    up = true;
    restarted = Date.now();
  });
  const done = await waitDelivery(hook.id, (x) => x.state === 'delivered', 'delivered after the restart');
  const last = recv.got['/restart'].at(-1);
  assert.ok(last.at >= restarted);
  verify(hook.secret, last);
  assert.ok(done.attempts >= 2);
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

test('a delivery in flight when the master is killed (-9) is made after the restart', async () => {
  const hook = await createHook({ url: recv.url('/crash') });
  recv.plan['/crash'] = ['hang', 200];
  await api('POST', `/api/webhooks/${hook.id}/test`);
  await waitGot('/crash', 1);
  await restart('SIGKILL', () => {
    assert.equal(d.sqlite(`SELECT state || '|' || attempts || '|' || (lease_until_ms IS NOT NULL) FROM webhook_deliveries WHERE endpoint_id = ${hook.id}`),
      'pending|1|1', 'leased to a worker that is gone');
  });
  const done = await waitDelivery(hook.id, (x) => x.state === 'delivered', 'delivered after the crash');
  assert.equal(done.attempts, 2);
  const got = recv.got['/crash'];
  assert.equal(got.length, 2);
  assert.equal(got[0].headers['webhook-id'], got[1].headers['webhook-id']);
  verify(hook.secret, got[1]);
  assert.equal((await api('DELETE', `/api/webhooks/${hook.id}`)).status, 200);
});

test('a delivery still failing 24 hours after its event is given up; so is one a disabled endpoint holds', async () => {
  const failing = await createHook({ url: recv.url('/giveup') });
  const held = await createHook({ url: recv.url('/held') });
  recv.plan['/giveup'] = [500];
  recv.plan['/held'] = [500];
  for (const h of [failing, held]) {
    await api('POST', `/api/webhooks/${h.id}/test`);
    await waitDelivery(h.id, (x) => x.last_status === 500, 'a failed attempt');
  }
  assert.equal((await api('PUT', `/api/webhooks/${held.id}`, { enabled: false })).status, 200);
  // A day and an hour go by while the daemon is stopped.
  await restart('SIGTERM', () => d.sqlite(`UPDATE webhook_deliveries SET created_at = created_at - 90000
    WHERE endpoint_id IN (${failing.id}, ${held.id})`));
  const gaveUp = await waitDelivery(failing.id, (x) => x.state === 'failed', 'given up');
  assert.equal(gaveUp.last_status, 500);
  assert.equal(gaveUp.last_error, 'the receiver answered 500');
  assert.equal(gaveUp.next_attempt_at, null);
  assert.equal(gaveUp.delivered_at, null);
  assert.ok(gaveUp.attempts >= 2);
  const heldRow = await waitDelivery(held.id, (x) => x.state === 'failed', 'given up while disabled');
  assert.equal(heldRow.last_error, 'the endpoint is disabled');
  assert.equal(heldRow.next_attempt_at, null);
  assert.match(d.log(), /webhook delivery \d+ given up after \d+ attempts: the receiver answered 500/);
  for (const h of [failing, held]) assert.equal((await api('DELETE', `/api/webhooks/${h.id}`)).status, 200);
});

test('a disabled endpoint gets nothing; enabling it again, it gets the next events', async () => {
  const on = await createHook({ url: recv.url('/on'), event_types: ['image.completed'] });
  const off = await createHook({ url: recv.url('/off'), event_types: ['image.completed'], enabled: false });
  assert.equal(off.enabled, false);
  const t = await api('POST', `/api/webhooks/${off.id}/test`);
  assert.equal(t.status, 409);
  assert.deepEqual(t.json, { detail: 'Webhook is disabled' });
  const run = async () => {
    const r = await request(d.base, 'POST', '/v1/images/generations', {
      headers: Object.assign({ 'Content-Type': 'application/json' }, AUTH),
      body: json({ prompt: tag('an image for two endpoints') }), timeout: 30000,
    });
    assert.equal(r.status, 200, r.text);
  };
  await run();
  await waitGot('/on', 1);
  assert.deepEqual(await deliveries(off.id), []);
  assert.equal(recv.got['/off'], undefined);
  const u = await api('PUT', `/api/webhooks/${off.id}`, { enabled: true });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.json.enabled, true);
  assert.equal(u.json.secret, undefined, 'an update without rotate_secret shows no secret');
  await run();
  const [entry] = await waitGot('/off', 1);
  assert.equal(verify(off.secret, entry).type, 'image.completed');
  for (const h of [on, off]) assert.equal((await api('DELETE', `/api/webhooks/${h.id}`)).status, 200);
});

test('create, update and delete: validation errors, rotation, deletion takes the pending deliveries', async () => {
  const workersBefore = d.workers();
  const bad = async (method, p, body, status, detail) => {
    const r = await api(method, p, body);
    assert.equal(r.status, status, `${method} ${p} ${json(body)}: ${r.text}`);
    assert.deepEqual(r.json, { detail }, `${method} ${p} ${json(body)}`);
  };
  const url = recv.url('/admin');
  await bad('POST', '/api/webhooks', {}, 400, 'url is required');
  await bad('POST', '/api/webhooks', { url: 'ftp://example.com/x' }, 400, 'url must be an http or https URL');
  await bad('POST', '/api/webhooks', { url: 'not a url' }, 400, 'url must be an http or https URL');
  await bad('POST', '/api/webhooks', { url: 42 }, 400, 'url must be an http or https URL');
  await bad('POST', '/api/webhooks', { url: `http://example.com/${'a'.repeat(2048)}` }, 400, 'url must be at most 2048 bytes');
  await bad('POST', '/api/webhooks', { url, event_types: [] }, 400, 'event_types must be a non-empty array of event types');
  await bad('POST', '/api/webhooks', { url, event_types: 'video.completed' }, 400, 'event_types must be a non-empty array of event types');
  await bad('POST', '/api/webhooks', { url, event_types: ['video.done'] }, 400,
    'unknown event type "video.done" (known: video.completed, video.failed, image.completed, image.failed)');
  await bad('POST', '/api/webhooks', { url, enabled: 'yes' }, 400, 'enabled must be a boolean');
  await bad('POST', '/api/webhooks', { url, secret: 'whsec_x' }, 400, 'unknown field "secret"');
  await bad('POST', '/api/webhooks', { url, rotate_secret: true }, 400, 'unknown field "rotate_secret"');

  const hook = await createHook({ url, event_types: ['image.failed'] });
  await bad('PUT', `/api/webhooks/${hook.id}`, {}, 400, 'Nothing to update');
  await bad('PUT', `/api/webhooks/${hook.id}`, { rotate_secret: false }, 400, 'Nothing to update');
  await bad('PUT', `/api/webhooks/${hook.id}`, { rotate_secret: 'yes' }, 400, 'rotate_secret must be a boolean');
  for (const v of ['60', -1, 604801, 1.5]) {
    await bad('PUT', `/api/webhooks/${hook.id}`, { rotate_secret: true, secret_overlap: v }, 400,
      'secret_overlap must be an integer of seconds from 0 to 604800');
  }
  await bad('PUT', `/api/webhooks/${hook.id}`, { enabled: true, secret_overlap: 60 }, 400, 'secret_overlap needs rotate_secret: true');
  await bad('POST', '/api/webhooks', { url, secret_overlap: 60 }, 400, 'unknown field "secret_overlap"');
  await bad('PUT', `/api/webhooks/${hook.id}`, { url: 'gopher://x' }, 400, 'url must be an http or https URL');
  await bad('PUT', '/api/webhooks/999999', { enabled: false }, 404, 'Webhook not found');
  await bad('DELETE', '/api/webhooks/999999', undefined, 404, 'Webhook not found');
  await bad('GET', '/api/webhooks/999999/deliveries', undefined, 404, 'Webhook not found');
  await bad('POST', '/api/webhooks/999999/test', undefined, 404, 'Webhook not found');
  await bad('GET', `/api/webhooks/${hook.id}/deliveries?limit=0`, undefined, 400, 'limit must be an integer from 1 to 1000');
  await bad('GET', `/api/webhooks/${hook.id}/deliveries?limit=x`, undefined, 400, 'limit must be an integer from 1 to 1000');
  const noAuth = await api('GET', '/api/webhooks', undefined, {});
  assert.equal(noAuth.status, 401);

  const u = await api('PUT', `/api/webhooks/${hook.id}`, { url: recv.url('/admin2'), event_types: ['video.completed', 'image.completed'], rotate_secret: true });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.json.url, recv.url('/admin2'));
  assert.deepEqual(u.json.event_types, ['video.completed', 'image.completed']);
  assert.match(u.json.secret, SECRET);
  assert.notEqual(u.json.secret, hook.secret);
  const listed = (await api('GET', '/api/webhooks')).json.find((h) => h.id === hook.id);
  assert.equal(listed.secret, undefined);
  assert.deepEqual(listed.event_types, ['video.completed', 'image.completed']);
  // The old secret keeps signing for a day (the default overlap).
  const until = Date.parse(listed.previous_secret_expires_at) / 1000;
  assert.ok(Math.abs(until - (Date.now() / 1000 + 86400)) < 60, listed.previous_secret_expires_at);
  await api('POST', `/api/webhooks/${hook.id}/test`);
  const [entry] = await waitGot('/admin2', 1);
  verify(u.json.secret, entry, hook.secret); // the new secret first, then the old one

  // A rotation without overlap: only the newest secret signs.
  const cut = await api('PUT', `/api/webhooks/${hook.id}`, { url: recv.url('/admin3'), rotate_secret: true, secret_overlap: 0 });
  assert.equal(cut.status, 200, cut.text);
  assert.equal(cut.json.previous_secret_expires_at, null);
  await api('POST', `/api/webhooks/${hook.id}/test`);
  verify(cut.json.secret, (await waitGot('/admin3', 1))[0]);
  // A short overlap ends by itself.
  const brief = await api('PUT', `/api/webhooks/${hook.id}`, { url: recv.url('/admin4'), rotate_secret: true, secret_overlap: 1 });
  assert.equal(brief.status, 200, brief.text);
  await waitFor(async () => (await api('GET', '/api/webhooks')).json.find((h) => h.id === hook.id)
    .previous_secret_expires_at === null, { timeout: 10000, what: 'the overlap ends' });
  await api('POST', `/api/webhooks/${hook.id}/test`);
  verify(brief.json.secret, (await waitGot('/admin4', 1))[0]);

  // A delivery still pending goes with its endpoint.
  recv.plan['/admin4'] = [500];
  await api('POST', `/api/webhooks/${hook.id}/test`);
  await waitDelivery(hook.id, (x) => x.last_status === 500, 'a failing delivery');
  const del = await api('DELETE', `/api/webhooks/${hook.id}`);
  assert.equal(del.status, 200);
  assert.deepEqual(del.json, { id: hook.id, deleted: true });
  assert.equal(d.sqlite(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ${hook.id}`), '0');
  assert.equal((await api('GET', '/api/webhooks')).json.find((h) => h.id === hook.id), undefined);
  await assertServing(d, workersBefore);
});
