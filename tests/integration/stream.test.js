'use strict';
// The streaming layer under server-sent events: chunked framing,
// heartbeats, a client that leaves, a graceful stop mid-stream, HTTP/1.0.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Daemon, request, raw, sleep, waitFor } = require('./lib/daemon');

function events(text) {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
}

test('a stream arrives whole, chunked, with heartbeats and [DONE]', async () => {
  const d = await new Daemon().start();
  try {
    const r = await request(d.base, 'GET', '/__test/stream?n=7&interval_ms=20');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.equal(r.headers['x-accel-buffering'], 'no');
    assert.deepEqual(events(r.text), ['{"i":0}', '{"i":1}', '{"i":2}', '{"i":3}', '{"i":4}', '{"i":5}', '{"i":6}', '[DONE]']);
    assert.equal((r.text.match(/^: keep-alive$/gm) || []).length, 2);
    // The connection is reusable after the stream.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      const s = await request(d.base, 'GET', '/__test/stream?n=2&interval_ms=1', { agent });
      assert.deepEqual(events(s.text), ['{"i":0}', '{"i":1}', '[DONE]']);
    }
    agent.destroy();
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('a client that leaves mid-stream is noticed and everything is released', async () => {
  const d = await new Daemon().start();
  try {
    await new Promise((resolve) => {
      const req = http.get(`${d.base}/__test/stream?n=1000&interval_ms=30`, (res) => {
        let got = 0;
        res.on('data', (c) => {
          got += (c.toString().match(/data: /g) || []).length;
          if (got >= 3) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => {});
    });
    await waitFor(() => /test stream: client went away after \d+ events/.test(d.log()), { what: 'disconnect noticed' });
    // The worker is not stuck draining a dead stream: a stop is quick.
    const t0 = Date.now();
    assert.equal((await d.stop()).code, 0);
    assert.ok(Date.now() - t0 < 5000);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('a graceful stop lets a running stream finish', async () => {
  const d = await new Daemon().start();
  try {
    const streamed = request(d.base, 'GET', '/__test/stream?n=10&interval_ms=100');
    await sleep(300);
    process.kill(d.pid, 'SIGTERM');
    const r = await streamed;
    assert.equal(events(r.text).length, 11);
    assert.equal(events(r.text)[10], '[DONE]');
    assert.equal((await d.exited).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('an HTTP/1.0 client gets the stream unchunked, ended by the close', async () => {
  const d = await new Daemon().start();
  try {
    const r = await raw(d.port, 'GET /__test/stream?n=3&interval_ms=10 HTTP/1.0\r\n\r\n');
    assert.match(r.data, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(r.data, /Transfer-Encoding/i);
    assert.match(r.data, /Connection: close/);
    const body = r.data.slice(r.data.indexOf('\r\n\r\n') + 4);
    assert.deepEqual(events(body), ['{"i":0}', '{"i":1}', '{"i":2}', '[DONE]']);
    assert.equal(r.why, 'end');
    assert.equal((await d.stop()).code, 0);
  } finally {
    d.cleanup();
  }
});
