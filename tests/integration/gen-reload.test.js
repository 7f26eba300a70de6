'use strict';
// Long streams: keep-alive comments while nothing happens, and a reload
// that replaces the workers without cutting the generations they stream.
const http = require('node:http');
const { test } = require('node:test');
const assert = require('node:assert/strict');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { sleep, childPids, pidAlive, waitFor, request } = require('./lib/daemon');

test('a reload lets running generations finish on the old workers', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 100 });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 });
    // About 3 s of pending reads at 100 ms.
    const steps = Array.from({ length: 30 }, (_, i) => i / 30);
    await g.fakeCall(fake, 'POST', '/__fake/script', { keywords: { '#long': { video: { pending: [null, ...steps] } } } });
    d.writeConf({ server: { workers: '1', shutdown_timeout: '0' } });
    const old = childPids(d.pid);
    const running = g.chat(d, { model: 'sora-video-10s', stream: true, messages: g.user('a long one #long') });
    await sleep(500);
    process.kill(d.pid, 'SIGHUP');
    const r = await running;
    assert.equal(r.status, 200);
    const s = g.parseStream(r);
    assert.equal(s.error, undefined, JSON.stringify(s.error));
    assert.equal(s.content.type, 'video');
    assert.ok(s.rcs.some((rc) => rc.progress >= 50), 'progress went on after the reload');
    // The old worker leaves once its stream has ended.
    await waitFor(() => old.every((pid) => !pidAlive(pid)), { what: 'the old worker gone' });
  } finally {
    await stopPool(ctx);
  }
});

test('a quiet stream carries keep-alive comments and a client that leaves cancels it', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 100, server: { keepalive_interval: '1' } });
  const { d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 });
    const text = await new Promise((resolve, reject) => {
      const req = http.request(`${d.base}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer han1234' },
      }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        setTimeout(() => { req.destroy(); resolve(body); }, 3600);
      });
      req.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
      req.end(JSON.stringify({ model: 'sora-video-10s', stream: true, messages: g.user('waits forever #stall') }));
    });
    const beats = text.split('\n\n').filter((e) => e === ': keep-alive').length;
    // [server] keepalive_interval = 1: about one a second of silence.
    assert.ok(beats >= 2 && beats <= 4, `${beats} keep-alive comments in 3.6 s:\n${text}`);
    assert.ok(text.startsWith('data: {'), 'events first');
    await waitFor(() => d.sqlite("SELECT status FROM tasks WHERE prompt = 'waits forever #stall'") === 'cancelled',
      { what: 'the task cancelled' });
  } finally {
    await stopPool(ctx);
  }
});

test('a stop that cannot wait tells running generations why they end', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 100, server: { shutdown_timeout: '1' } });
  const { d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 });
    const streamed = g.chat(d, { model: 'sora-video-10s', stream: true, messages: g.user('never ends #stall') });
    const waiting = g.chat(d, { model: 'sora-video-10s', messages: g.user('never ends either #stall') });
    await waitFor(() => d.sqlite("SELECT COUNT(*) FROM tasks WHERE status = 'running'") === '2', { what: 'two running' });
    const stopped = d.stop();
    const s = g.parseStream(await streamed);
    assert.equal(s.error.code, 'server_shutdown');
    g.assertHttpError(await waiting, 503, 'server_shutdown', 'server_error');
    assert.equal((await stopped).code, 0);
    // Sora has both tasks: the rows stay running for the next start
    // (gen-resume.test.js), nothing says cancelled.
    assert.equal(d.sqlite("SELECT group_concat(status || ':' || COALESCE(error_message, ''), '|') FROM tasks"),
      'running:|running:');
  } finally {
    d.cleanup();
    await ctx.fake.close();
  }
});

test('by default a client image URL may not reach a private address', async () => {
  const ctx = await g.startGenPool({ workers: 1, upstream: { fetch_private_urls: 'no' } });
  try {
    await g.addToken(ctx);
    const since = await g.lastSeq(ctx.fake);
    const r = await g.chat(ctx.d, { model: 'sora-image', messages: g.user([{ type: 'text', text: 'from inside' },
      { type: 'image_url', image_url: { url: `${ctx.fake.url}/media/input.png` } }]) });
    const e = g.assertHttpError(r, 502, 'upload_failed', 'upstream_error');
    // One text for every failed client URL: nothing about why.
    assert.equal(e.message, 'the image URL could not be fetched');
    // Nothing was fetched, nothing uploaded.
    const calls = await g.genCalls(ctx.fake, since);
    assert.deepEqual(g.callNames(calls), []);
  } finally {
    await stopPool(ctx);
  }
});

test('each accepted video lowers the token quota the scheduler sees', async () => {
  const ctx = await g.startGenPool({ workers: 1 });
  try {
    const t = await g.addToken(ctx, { video_concurrency: 3 }, { remaining: 2 });
    assert.equal((await g.tokenById(ctx, t.id)).sora2_remaining_count, 2);
    for (const p of ['first of two', 'second of two']) {
      const s = g.parseStream(await g.chat(ctx.d, { model: 'sora-video-10s', stream: true, messages: g.user(p) }));
      assert.equal(s.content.type, 'video');
    }
    await waitFor(async () => (await g.tokenById(ctx, t.id)).sora2_remaining_count === 0, { what: 'quota 0' });
    // No third submission that Sora would refuse: the token is passed over.
    const r = await request(ctx.d.base, 'POST', '/api/admin/config', { headers: ctx.H, body: JSON.stringify({ queue_timeout: 1 }) });
    assert.equal(r.status, 200, r.text);
    const since = await g.lastSeq(ctx.fake);
    const e = g.assertHttpError(await g.chat(ctx.d, { model: 'sora-video-10s', messages: g.user('third') }), 503, 'no_available_token');
    assert.match(e.message, /no quota left/);
    assert.equal(g.byPath(await g.genCalls(ctx.fake, since), 'POST', '/backend/nf/create').length, 0);
  } finally {
    await stopPool(ctx);
  }
});

test('a token deleted while its task runs ends the job at once', async () => {
  const ctx = await g.startGenPool({ workers: 1 });
  try {
    const t = await g.addToken(ctx, { video_concurrency: 3 });
    const running = g.chat(ctx.d, { model: 'sora-video-10s', stream: true, messages: g.user('orphan #stall') });
    await waitFor(() => ctx.d.sqlite("SELECT status FROM tasks WHERE prompt = 'orphan #stall'") === 'running', { what: 'running' });
    const r = await request(ctx.d.base, 'DELETE', `/api/tokens/${t.id}`, { headers: ctx.H });
    assert.equal(r.status, 200, r.text);
    const s = g.parseStream(await running);
    assert.equal(s.error.code, 'token_invalidated');
    assert.match(s.error.message, /removed from the pool/);
    await waitFor(() => ctx.d.sqlite("SELECT status FROM tasks WHERE prompt = 'orphan #stall'") === 'failed', { what: 'failed' });
  } finally {
    await stopPool(ctx);
  }
});
