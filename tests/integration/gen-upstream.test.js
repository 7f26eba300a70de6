'use strict';
// Upstream faults end in bounded time, and client-supplied URLs cannot
// reach the gateway's own network (docs/generation.md, "Bounded upstream
// calls" and "Client-supplied URLs"): a black-holed Sora, a handshake
// that never completes, a hung poll, failing polls backing off, a stalled
// result download; refused image URLs that get no packet, one error text
// for every failure, redirects checked alike.
const { test, before, after, describe } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { request, waitFor, freePort } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { json, user } = g;
let nonce = 0;
const tag = (s) => `${s} [u${++nonce}]`;
const secs = (t0) => (Date.now() - t0) / 1000;

// A TCP listener counting the connections it accepts (and answering
// nothing): what must see none at all.
async function counter(host = '127.0.0.1') {
  const srv = net.createServer((s) => { srv.accepted++; s.destroy(); });
  srv.accepted = 0;
  await new Promise((res) => srv.listen(0, host, res));
  srv.port = srv.address().port;
  return srv;
}

// A listener whose accept queue is full and never drained: a connect to
// it never completes its handshake (Linux drops the SYN).
function fullBacklog() {
  const py = spawn('python3', ['-c', [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'port = s.getsockname()[1]',
    'fill = []',
    'for i in range(2):',
    '    c = socket.socket(); c.setblocking(False)',
    '    try: c.connect(("127.0.0.1", port))',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'time.sleep(0.3); print(port, flush=True); sys.stdin.read()',
  ].join('\n')], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    py.stdout.once('data', (d) => res({ port: Number(String(d).trim()), close: () => py.kill() }));
    py.once('error', rej);
  });
}

const imageMsg = (url) => user([{ type: 'text', text: tag('animate this') }, { type: 'image_url', image_url: { url } }]);

describe('upstream faults end in bounded time', () => {
  let ctx;
  let fake;
  let d;
  let png;

  before(async () => {
    // Small bounds: 1 s to connect, 1 s without a byte, 3 s for all
    // submit attempts of a job (more attempts than the budget allows),
    // polls backing off to 1 s at most.
    ctx = await g.startGenPool({ workers: 1, upstream: {
      connect_timeout: '1', read_timeout: '1', submit_budget: '3', submit_attempts: '10', poll_backoff_max: '1',
    } });
    ({ fake, d } = ctx);
    png = await g.pngBytes(fake);
  });
  after(() => stopPool(ctx));

  async function fresh(tokens = 1) {
    await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases === 0, { what: 'no lease left' });
    await g.disarm(fake);
    await g.emptyPool(ctx);
    for (let i = 0; i < tokens; i++) await g.addToken(ctx, {}, { remaining: null });
  }

  test('a black-holed submit fails within the submit budget: upstream_unavailable, streamed and not', async () => {
    await fresh(4);
    await fake.arm({ route: 'POST /backend/nf/create', hang: true, times: -1 });
    await fake.arm({ route: 'POST /backend/video_gen', hang: true, times: -1 });
    let t0 = Date.now();
    const s = g.parseStream(await g.chat(d, { model: 'sora-video-10s', stream: true, messages: user(tag('into the void')) },
      { timeout: 60000 }));
    let took = secs(t0);
    assert.ok(took >= 2.5 && took < 5, `failed after ${took} s`);
    assert.equal(s.error.code, 'upstream_unavailable', JSON.stringify(s.content));
    assert.match(s.error.message, /^Sora did not take the generation within 3 seconds \(\d+ attempts?\)/);
    assert.deepEqual(s.content, { type: 'error', error: s.error.message, data: { error: s.error.message, code: 'upstream_unavailable' } });

    const since = await g.lastSeq(fake);
    t0 = Date.now();
    const r = await g.chat(d, { model: 'sora-image', stream: false, messages: user(tag('into the void again')) }, { timeout: 60000 });
    took = secs(t0);
    assert.ok(took >= 2.5 && took < 5, `failed after ${took} s: ${r.text}`);
    g.assertHttpError(r, 504, 'upstream_unavailable', 'timeout_error');
    // Attempts that got no answer at all: each one cut at the read timeout.
    const hung = g.byPath(await g.genCalls(fake, since), 'POST', '/backend/video_gen');
    assert.ok(hung.length >= 2, `more than one attempt within the budget: ${hung.length}`);
  });

  test('a black-holed upload fails within the submit budget', async () => {
    await fresh(3);
    await fake.arm({ route: 'POST /backend/uploads', hang: true, times: -1 });
    const t0 = Date.now();
    const r = await g.chat(d, { model: 'sora-image', stream: false,
      messages: imageMsg(`data:image/png;base64,${png.toString('base64')}`) }, { timeout: 60000 });
    const took = secs(t0);
    assert.ok(took >= 2.5 && took < 5, `failed after ${took} s`);
    g.assertHttpError(r, 504, 'upstream_unavailable', 'timeout_error');
  });

  test('attempts that all get no answer fail with upstream_unavailable at once', async () => {
    await fresh(2);
    await fake.arm({ route: 'POST /backend/nf/create', drop: true, times: -1 });
    const t0 = Date.now();
    const r = await g.chat(d, { model: 'sora-video-10s', stream: false, messages: user(tag('dropped twice')) });
    assert.ok(secs(t0) < 2, `failed after ${secs(t0)} s`);
    g.assertHttpError(r, 502, 'upstream_unavailable', 'upstream_error');
  });

  test('a handshake that never completes ends at connect_timeout', async () => {
    await fresh(1);
    const hole = await fullBacklog();
    try {
      const t0 = Date.now();
      const r = await g.chat(d, { model: 'sora-image', stream: false, messages: imageMsg(`http://127.0.0.1:${hole.port}/x.png`) },
        { timeout: 60000 });
      const took = secs(t0);
      assert.ok(took >= 0.9 && took < 3, `failed after ${took} s`);
      g.assertHttpError(r, 502, 'upload_failed', 'upstream_error');
    } finally {
      hole.close();
    }
  });

  test('a hung poll is abandoned at read_timeout and the job goes on', async () => {
    await fresh(1);
    await fake.arm({ route: 'GET /backend/nf/pending', hang: true, times: 1 });
    const t0 = Date.now();
    const s = g.parseStream(await g.chat(d, { model: 'sora-video-10s', stream: true, messages: user(tag('one poll lost')) },
      { timeout: 60000 }));
    assert.equal(s.content.type, 'video', JSON.stringify(s.content));
    assert.ok(secs(t0) < 5, `done after ${secs(t0)} s`);
  });

  test('failing polls back off, at most poll_backoff_max apart', async () => {
    await fresh(1);
    await fake.arm({ route: 'GET /backend/nf/pending', status: 500, times: -1 });
    const since = await g.lastSeq(fake);
    const job = g.chat(d, { model: 'sora-video-10s', stream: true, messages: user(tag('polls failing')) }, { timeout: 60000 });
    await new Promise((res) => setTimeout(res, 4000));
    const failed = g.byPath(await g.genCalls(fake, since), 'GET', '/backend/nf/pending').length;
    // Every 50 ms would be ~80 polls; doubling from 100 ms to 1 s, ~7.
    assert.ok(failed >= 4 && failed <= 12, `${failed} polls while failing`);
    await g.disarm(fake);
    const t0 = Date.now();
    const s = g.parseStream(await job);
    assert.equal(s.content.type, 'video', JSON.stringify(s.content));
    // The next poll came at most 1 s later, then the usual reads.
    assert.ok(secs(t0) < 3, `done ${secs(t0)} s after the polls recovered`);
  });

  test('a stalled result download ends at read_timeout: the upstream URL is used', async () => {
    await fresh(1);
    assert.equal((await request(d.base, 'POST', '/api/cache/enabled', { headers: ctx.H, body: json({ enabled: true }) })).status, 200);
    try {
      await fake.arm({ route: 'GET /media/*', hang: true, times: -1 });
      const t0 = Date.now();
      const s = g.parseStream(await g.chat(d, { model: 'sora-image', stream: true, messages: user(tag('stalled download')) },
        { timeout: 60000 }));
      assert.ok(secs(t0) < 5, `done after ${secs(t0)} s`);
      assert.equal(s.content.type, 'image', JSON.stringify(s.content));
      const last = s.rcs[s.rcs.length - 1];
      assert.equal(last.stage, 'cache');
      assert.equal(last.status, 'error');
      assert.match(last.message, /no data from the upstream for 1 seconds/);
    } finally {
      await g.disarm(fake);
      await request(d.base, 'POST', '/api/cache/enabled', { headers: ctx.H, body: json({ enabled: false }) });
    }
  });
});

describe('client-supplied URLs cannot reach private addresses', () => {
  let ctx;
  let d;
  let png;
  const FAILED = 'the image URL could not be fetched';

  before(async () => {
    // 127.0.0.2 plays a public host (a test-build hook); the fake itself
    // is on 127.0.0.1, and Sora calls to it are not client URLs.
    ctx = await g.startGenPool({ workers: 1, upstream: { fetch_private_urls: 'no' },
      env: { SORA2API_TEST_PUBLIC_ADDRS: '127.0.0.2' } });
    ({ d } = ctx);
    png = await g.pngBytes(ctx.fake);
    await g.addToken(ctx, {}, { remaining: null });
  });
  after(() => stopPool(ctx));

  const fetchImage = (url) => g.chat(d, { model: 'sora-image', stream: false, messages: imageMsg(url) });

  test('an open and a closed private port get the same answer, and the open one no connection', async () => {
    const open = await counter();
    const closed = await freePort();
    try {
      const a = g.assertHttpError(await fetchImage(`http://127.0.0.1:${open.port}/x.png`), 502, 'upload_failed', 'upstream_error');
      const b = g.assertHttpError(await fetchImage(`http://127.0.0.1:${closed}/x.png`), 502, 'upload_failed', 'upstream_error');
      const c = g.assertHttpError(await fetchImage(`http://localhost:${open.port}/x.png`), 502, 'upload_failed', 'upstream_error');
      assert.equal(a.message, FAILED);
      assert.equal(b.message, FAILED);
      assert.equal(c.message, FAILED);
      // The fake upstream's own port, which the pool's connections reach.
      const f = g.assertHttpError(await fetchImage(`${ctx.fake.url}/media/input.png`), 502, 'upload_failed', 'upstream_error');
      assert.equal(f.message, FAILED);
      assert.equal(open.accepted, 0, 'no connection reached the open port');
    } finally {
      open.close();
    }
  });

  test('a refused https:// URL gets no connection either (no TLS ClientHello)', async () => {
    const srv = await counter();
    try {
      for (const u of [`https://127.0.0.1:${srv.port}/x.png`, `http://127.0.0.1:${srv.port}/x.png`]) {
        const e = g.assertHttpError(await fetchImage(u), 502, 'upload_failed', 'upstream_error');
        assert.equal(e.message, FAILED);
      }
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(srv.accepted, 0);
    } finally {
      srv.close();
    }
  });

  test('a public URL redirecting to a private address is refused before the second connection', async () => {
    const inner = await counter();
    let hits = 0;
    const pub = http.createServer((req, res) => {
      hits++;
      if (req.url === '/ok.png') {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.end(png);
        return;
      }
      res.writeHead(302, { location: `http://127.0.0.1:${inner.port}/x.png` });
      res.end();
    });
    await new Promise((res) => pub.listen(0, '127.0.0.2', res));
    const base = `http://127.0.0.2:${pub.address().port}`;
    try {
      const e = g.assertHttpError(await fetchImage(`${base}/moved.png`), 502, 'upload_failed', 'upstream_error');
      assert.equal(e.message, FAILED);
      assert.equal(hits, 1, 'the public host was asked');
      assert.equal(inner.accepted, 0, 'the redirect target got no connection');
      // The same host serving the image itself is fine: the check is
      // about addresses, not about fetching.
      const r = await fetchImage(`${base}/ok.png`);
      assert.equal(g.parseCompletion(r).type, 'image', r.text);
    } finally {
      pub.close();
      inner.close();
    }
  });
});
