'use strict';
// HTTP hardening: strict RFC 9112 framing on the live server, bodies read
// only after the credential (per-route limits, a per-worker cap on body
// bytes in flight), and the admin API closed to other origins with the
// admin UI's security headers.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { Daemon, request, raw, AUTH, adminLogin, sleep, LAG_BOUND_MS, SANITIZED } = require('./lib/daemon');

const ADMIN_ORIGIN = 'https://admin.example';
let d;
let b;
before(async () => {
  d = new Daemon({ conf: { server: { workers: '1', admin_cors_origins: `${ADMIN_ORIGIN} https://ops.example` } } });
  fs.mkdirSync(path.join(d.dir, 'ui'), { recursive: true });
  fs.writeFileSync(path.join(d.dir, 'ui', 'index.html'), '<!doctype html><title>ui</title>');
  await d.start();
  b = await new Daemon({ conf: { server: { workers: '1', max_inflight_body: '1m', max_body_size: '4m' } } }).start();
});
after(async () => {
  for (const x of [d, b]) {
    const res = await x.stop();
    assert.equal(res.code, 0);
    assert.deepEqual(x.unexpectedErrors(), []);
    x.cleanup();
  }
});

function status(data) {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(data);
  return m ? Number(m[1]) : 0;
}

function envelope(data, want) {
  assert.equal(status(data), want, data.slice(0, 300));
  const body = JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4));
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  return body.error;
}

// Peak resident memory (VmHWM, KiB) of the daemon's workers.
function workerHwm(x) {
  return x.workers().map((pid) => {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(st)[1]);
  }).reduce((a, v) => a + v, 0);
}

// Opens a connection, sends `head` and then up to `bodyLen` body bytes
// (as fast as the peer takes them); resolves with what came back when
// the peer answered and closed, or after `holdMs`, keeping the socket
// open when `hold` (the caller destroys it).
function sendBody(port, head, bodyLen, { holdMs = 5000, hold = false } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const piece = Buffer.alloc(1 << 20, 0x20);
    let sent = 0;
    let data = '';
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      if (!hold) s.destroy();
      resolve({ data, why, sock: s, sent });
    };
    const pump = () => {
      while (sent < bodyLen && !s.destroyed) {
        const n = Math.min(piece.length, bodyLen - sent);
        sent += n;
        if (!s.write(n === piece.length ? piece : piece.subarray(0, n))) {
          s.once('drain', pump);
          return;
        }
      }
    };
    s.on('connect', () => { s.write(head); pump(); });
    s.on('data', (c) => { data += c.toString('latin1'); });
    s.on('close', () => finish('close'));
    s.on('error', () => {});
    setTimeout(() => finish('timeout'), holdMs);
  });
}

test('framing ambiguities are refused with 400 and a close', async () => {
  const H = 'Host: x\r\n';
  const cases = [
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    'POST /__test/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5; x=1\r\nhello\r\n0\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\n${H}X\0A: a\r\n\r\n`,
    'GET /healthz HTTP/1.1\nHost: x\n\n',
    'GET /healthz HTTP/1.1\r\n\r\n',
    `GET /healthz HTTP/1.1\r\n${H}Host: y\r\n\r\n`,
    `POST /__test/echo HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello`,
    `POST /__test/echo HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`,
    `POST /__test/echo HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`,
  ];
  for (const req of cases) {
    const r = await raw(d.port, req);
    const e = envelope(r.data, 400);
    assert.equal(e.code, 'bad_request', JSON.stringify(req));
    assert.match(r.data, /\r\nConnection: close\r\n/);
  }
  // Well-formed framing still works: identical lengths, strict extensions.
  const ok = await raw(d.port, `POST /__test/echo HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`);
  assert.equal(status(ok.data), 200);
  const ck = await raw(d.port, `POST /__test/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;a="b c"\r\nhello\r\n0\r\n\r\n`);
  assert.equal(status(ck.data), 200);
  assert.match(ck.data, /"length":5/);
});

test('a 404 for a path that is not UTF-8 keeps the error envelope', async () => {
  const r = await raw(d.port, Buffer.from('GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer han1234\r\nConnection: close\r\n\r\n', 'latin1'));
  assert.equal(envelope(r.data, 404).code, 'unknown_url');
  const s = await raw(d.port, 'GET /%ff%c0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(envelope(s.data, 404).type, 'invalid_request_error');
});

test('no body is read before the credential: 401 at once, then close', async () => {
  const len = 60 << 20;
  for (const [p, auth] of [['/v1/chat/completions', ''], ['/api/tokens/import', 'Authorization: Bearer nope\r\n']]) {
    const started = Date.now();
    const r = await sendBody(d.port, `POST ${p} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`, 1 << 20);
    assert.equal(status(r.data), 401, p);
    assert.match(r.data, /\r\nConnection: close\r\n/);
    assert.ok(Date.now() - started < 4000);
  }
  // An admin JSON route takes 1 MiB at most, refused before reading.
  const big = await sendBody(d.port, `POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: ${(1 << 20) + 1}\r\n\r\n`, 0);
  assert.equal(status(big.data), 413);
  // In the admin API's own shape.
  assert.deepEqual(JSON.parse(big.data.slice(big.data.indexOf('\r\n\r\n') + 4)), { detail: 'The request body is larger than the limit.' });
  const small = await request(d.base, 'POST', '/api/login', { body: JSON.stringify({ username: 'admin', password: 'admin' }) });
  assert.equal(small.status, 200);
});

test('a 64 MiB unauthenticated login body does not grow the worker', async (t) => {
  const hwm0 = workerHwm(d);
  const r = await sendBody(d.port, `POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 << 20}\r\n\r\n`, 64 << 20, { holdMs: 8000 });
  assert.ok([401, 413].includes(status(r.data)), r.data.slice(0, 200));
  await sleep(200);
  const hwm1 = workerHwm(d);
  t.diagnostic(`worker VmHWM before ${hwm0} kB, after the 64 MiB login body ${hwm1} kB`);
  if (!SANITIZED) assert.ok(hwm1 - hwm0 < 8 * 1024, `worker peak grew by ${hwm1 - hwm0} kB`);
});

test('20 held 60 MiB unauthenticated bodies add no memory; /healthz stays fast', async (t) => {
  const hwm0 = workerHwm(d);
  const len = 60 << 20;
  const held = await Promise.all(Array.from({ length: 20 }, (_, i) => sendBody(d.port,
    `POST ${i % 2 ? '/v1/chat/completions' : '/api/admin/config'} HTTP/1.1\r\nHost: x\r\nContent-Length: ${len}\r\n\r\n`,
    len - 1, { holdMs: 300, hold: true })));
  const slow = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    const h = await request(d.base, 'GET', '/healthz');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.equal(h.status, 200);
    slow.push(ms);
  }
  for (const h of held) {
    assert.equal(status(h.data), 401);
    h.sock.destroy();
  }
  const hwm1 = workerHwm(d);
  t.diagnostic(`worker VmHWM before ${hwm0} kB, with 20 held bodies ${hwm1} kB; /healthz ms ${slow.map((x) => x.toFixed(1)).join(' ')}`);
  if (!SANITIZED) assert.ok(hwm1 - hwm0 < 8 * 1024, `worker peak grew by ${hwm1 - hwm0} kB`);
  assert.ok(Math.max(...slow) < LAG_BOUND_MS, `healthz took ${Math.max(...slow)} ms (bound ${LAG_BOUND_MS})`);
});

test('over max_inflight_body new bodies get 503 with Retry-After; accepted ones finish', async () => {
  const len = 800 * 1024;
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer han1234\r\nContent-Length: ${len}\r\n\r\n`;
  const first = net.connect(b.port, '127.0.0.1');
  let firstData = '';
  first.on('data', (c) => { firstData += c; });
  first.on('error', () => {});
  await new Promise((r) => first.on('connect', r));
  first.write(head);
  first.write(Buffer.alloc(1000, 0x20));
  await sleep(200);
  const second = await sendBody(b.port, head, len);
  const e = envelope(second.data, 503);
  assert.equal(e.code, 'server_busy');
  assert.match(second.data, /\r\nRetry-After: 1\r\n/);
  // The accepted body completes and reaches its handler.
  first.write(Buffer.alloc(len - 1000, 0x20));
  for (let i = 0; i < 50 && !firstData.includes('\r\n\r\n'); i++) await sleep(100);
  assert.equal(status(firstData), 400, firstData.slice(0, 200));
  assert.match(firstData, /invalid_json/);
  first.destroy();
  await sleep(100);
  const third = await sendBody(b.port, head, len);
  assert.equal(status(third.data), 400);
});

test('the admin API has no CORS unless the origin is allowed', async () => {
  const H = await adminLogin(d);
  const plain = await request(d.base, 'GET', '/api/stats', { headers: { ...H, Origin: 'https://evil.example' } });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['access-control-allow-origin'], undefined);
  assert.equal(plain.headers.vary, 'Origin');
  const ok = await request(d.base, 'GET', '/api/stats', { headers: { ...H, Origin: ADMIN_ORIGIN } });
  assert.equal(ok.headers['access-control-allow-origin'], ADMIN_ORIGIN);
  assert.equal(ok.headers.vary, 'Origin');
  const ops = await request(d.base, 'GET', '/api/stats', { headers: { ...H, Origin: 'https://ops.example' } });
  assert.equal(ops.headers['access-control-allow-origin'], 'https://ops.example');
  // Not a prefix or suffix match.
  const near = await request(d.base, 'GET', '/api/stats', { headers: { ...H, Origin: `${ADMIN_ORIGIN}.evil` } });
  assert.equal(near.headers['access-control-allow-origin'], undefined);
  const pre = { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' };
  const good = await request(d.base, 'OPTIONS', '/api/tokens', { headers: { ...pre, Origin: ADMIN_ORIGIN } });
  assert.equal(good.status, 204);
  assert.equal(good.headers['access-control-allow-origin'], ADMIN_ORIGIN);
  const bad = await request(d.base, 'OPTIONS', '/api/tokens', { headers: { ...pre, Origin: 'https://evil.example' } });
  assert.equal(bad.status, 401);
  assert.equal(bad.headers['access-control-allow-origin'], undefined);
  assert.equal(bad.headers['access-control-allow-methods'], undefined);
  // /v1 stays open to every origin.
  const v1 = await request(d.base, 'GET', '/v1/models', { headers: { ...AUTH, Origin: 'https://evil.example' } });
  assert.equal(v1.headers['access-control-allow-origin'], '*');
});

test('the admin UI and API carry frame, sniffing, referrer and content policies', async () => {
  const H = await adminLogin(d);
  for (const [p, h] of [['/', {}], ['/index.html', {}], ['/api/stats', H], ['/api/stats', {}]]) {
    const r = await request(d.base, 'GET', p, { headers: h });
    assert.equal(r.headers['x-frame-options'], 'DENY', p);
    assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
    assert.equal(r.headers['referrer-policy'], 'no-referrer', p);
    assert.match(r.headers['content-security-policy'], /frame-ancestors 'none'/, p);
  }
  const ui = await request(d.base, 'GET', '/');
  assert.match(ui.headers['content-security-policy'], /default-src 'self'/);
  // The shipped UI loads only its own files: no inline script or style.
  const root = path.resolve(__dirname, '..', '..', 'admin-ui');
  const html = fs.readFileSync(path.join(root, 'index.html'), 'utf8');
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i);
  assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i);
});
