'use strict';
// Static files (content types, caching, path escapes) and the HTTP
// server's limits (body and head size, deadlines, malformed requests).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Daemon, request, raw, AUTH } = require('./lib/daemon');

let d;
before(async () => {
  d = new Daemon({ conf: { server: { max_body_size: '4k', max_header_size: '2k', client_timeout: '2' } } });
  // The UI tree, plus a secret next to it and a symlink pointing out.
  const ui = path.join(d.dir, 'ui');
  fs.mkdirSync(path.join(ui, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(ui, 'index.html'), '<!doctype html><title>ui</title>');
  fs.writeFileSync(path.join(ui, 'assets', 'app.js'), 'console.log(1);');
  fs.writeFileSync(path.join(ui, 'assets', 'logo.svg'), '<svg/>');
  fs.writeFileSync(path.join(d.dir, 'secret.txt'), 'TOP SECRET');
  fs.symlinkSync(path.join(d.dir, 'secret.txt'), path.join(ui, 'link.txt'));
  fs.symlinkSync(d.dir, path.join(ui, 'up'));
  await d.start();
});
after(async () => {
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
});

function assertEnvelope(text, status) {
  const m = text.match(/^HTTP\/1\.1 (\d+) /);
  assert.ok(m, `no status line in ${JSON.stringify(text.slice(0, 80))}`);
  assert.equal(Number(m[1]), status);
  assert.match(text, /\r\nContent-Type: application\/json\r\n/);
  assert.match(text, /\r\nConnection: close\r\n/);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  return body.error;
}

test('serves the UI with content types, validators and caching headers', async () => {
  const r = await request(d.base, 'GET', '/');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(r.headers['cache-control'], 'no-cache');
  assert.equal(r.text, '<!doctype html><title>ui</title>');
  const js = await request(d.base, 'GET', '/assets/app.js');
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'no-cache');
  assert.equal(js.headers['x-content-type-options'], 'nosniff');
  assert.ok(js.headers.etag);
  assert.ok(js.headers['last-modified']);
  const svg = await request(d.base, 'GET', '/assets/logo.svg');
  assert.equal(svg.headers['content-type'], 'image/svg+xml');
  const again = await request(d.base, 'GET', '/assets/app.js', { headers: { 'If-None-Match': js.headers.etag } });
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  const since = await request(d.base, 'GET', '/assets/app.js', { headers: { 'If-Modified-Since': js.headers['last-modified'] } });
  assert.equal(since.status, 304);
  const head = await request(d.base, 'HEAD', '/assets/app.js');
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers['content-length']), 15);
  assert.equal(head.body.length, 0);
  const dir = await request(d.base, 'GET', '/assets/');
  assert.equal(dir.status, 404);
});

test('no path leads outside the UI tree', async () => {
  const tricks = [
    '/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E%2Fsecret.txt',
    '/assets/%2e%2e/%2e%2e/secret.txt', '/..%2fsecret.txt', '/link.txt', '/up/secret.txt',
    '/assets/..%5c..%5csecret.txt', '//secret.txt', '/./index.html',
  ];
  for (const t of tricks) {
    const r = await raw(d.port, `GET ${t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.doesNotMatch(r.data, /TOP SECRET/, t);
    assert.match(r.data, /^HTTP\/1\.1 (404|400) /, `${t}: ${r.data.slice(0, 40)}`);
  }
  const nul = await raw(d.port, 'GET /index.html%00.js HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(assertEnvelope(nul.data, 400).code, 'bad_request');
});

test('an oversized body gets 413 in the OpenAI envelope before it is read', async () => {
  const big = 'x'.repeat(5000);
  const r = await raw(d.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer han1234\r\nContent-Length: ${big.length}\r\n\r\n${big}`);
  const e = assertEnvelope(r.data, 413);
  assert.equal(e.code, 'request_too_large');
  assert.equal(e.type, 'invalid_request_error');
  // Chunked bodies are limited too.
  const chunk = 'a'.repeat(3000);
  const c = await raw(d.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer han1234\r\nTransfer-Encoding: chunked\r\n\r\n${(3000).toString(16)}\r\n${chunk}\r\n${(3000).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
  assert.equal(assertEnvelope(c.data, 413).code, 'request_too_large');
});

test('a body within the limit, chunked or not, reaches the handler', async () => {
  const body = 'y'.repeat(4096);
  const r = await raw(d.port, `POST /__test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  assert.match(r.data, /^HTTP\/1\.1 200 /);
  assert.match(r.data, /"length":4096/);
  const c = await raw(d.port, 'POST /__test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n');
  assert.match(c.data, /^HTTP\/1\.1 200 /);
  assert.match(c.data, /"length":11,"sha256":"b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"/);
  const e = await raw(d.port, `POST /__test/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n`, { timeout: 300 });
  assert.match(e.data, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
});

test('an oversized head gets 431, malformed requests 400, unknown versions 505', async () => {
  const h = await raw(d.port, `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(3000)}\r\n\r\n`);
  assert.equal(assertEnvelope(h.data, 431).code, 'request_header_fields_too_large');
  const cases = [
    ['GARBAGE\r\n\r\n', 400],
    ['GET /v1/models HTTP/1.1\r\nHost x\r\n\r\n', 400],
    ['GET /v1/models HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 400],
    ['GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    ['GET /v1/models HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['GET /v1/models HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 400],
    ['GET /v1/models HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 400],
    ['GET /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 400],
    ['GET v1/models HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ];
  for (const [req, status] of cases) {
    const r = await raw(d.port, req);
    assertEnvelope(r.data, status);
  }
});

test('a slow client is cut off after client_timeout; an idle one too', async () => {
  const slow = await raw(d.port, 'GET /v1/models HTTP/1.1\r\nHost: x\r\n', { timeout: 10000 });
  assert.ok(slow.ms >= 1500 && slow.ms < 8000, `closed after ${slow.ms} ms`);
  assert.equal(assertEnvelope(slow.data, 408).code, 'request_timeout');
  const idle = await raw(d.port, '', { timeout: 10000 });
  assert.ok(idle.ms >= 1500 && idle.ms < 8000, `idle closed after ${idle.ms} ms`);
  assert.equal(idle.data, '');
  const body = await raw(d.port, 'POST /__test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc', { timeout: 10000 });
  assert.ok(body.ms >= 1500 && body.ms < 8000, `body wait closed after ${body.ms} ms`);
  assert.equal(assertEnvelope(body.data, 408).code, 'request_timeout');
});

test('trickling a head one byte at a time does not extend the deadline', async () => {
  const net = require('node:net');
  const started = Date.now();
  const res = await new Promise((resolve) => {
    const s = net.connect(d.port, '127.0.0.1');
    let data = '';
    const text = `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(200)}\r\n`;
    let i = 0;
    const iv = setInterval(() => { if (i < text.length) s.write(text[i++]); }, 200);
    s.on('data', (c) => { data += c; });
    s.on('close', () => { clearInterval(iv); resolve(data); });
    s.on('error', () => {});
  });
  const ms = Date.now() - started;
  // The whole head would take 46 s at this pace.
  assert.ok(ms < 10000, `closed after ${ms} ms`);
  assert.equal(assertEnvelope(res, 408).code, 'request_timeout');
});

test('pipelined requests are answered in order on one connection', async () => {
  const one = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const r = await raw(d.port, one + one + 'GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer han1234\r\nConnection: close\r\n\r\n');
  const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d+) /g)].map((m) => Number(m[1]));
  assert.deepEqual(statuses, [200, 200, 200]);
  assert.match(r.data, /"object":"list"/);
});

test('HTTP/1.0 closes unless keep-alive is asked for', async () => {
  const r = await raw(d.port, 'GET /healthz HTTP/1.0\r\n\r\n');
  assert.match(r.data, /^HTTP\/1\.1 200 /);
  assert.match(r.data, /Connection: close/);
  assert.equal(r.why, 'end');
  const k = await raw(d.port, 'GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', { timeout: 500 });
  assert.match(k.data, /Connection: keep-alive/);
  assert.equal(k.why, 'timeout');
  const ok = await request(d.base, 'GET', '/v1/models', { headers: AUTH });
  assert.equal(ok.status, 200);
});
