'use strict';
// Test hooks are compile-time only. With S2A_RELEASE=1 (make check-release)
// the binary under test is a release build: no /__test/ route answers, and
// neither its symbols nor its strings mention the hooks. Without it (the
// whole suite, against the test build) the same checks run the other way
// round, so they are known to see hooks where there are some.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const { Daemon, request, BIN } = require('./lib/daemon');

const RELEASE = process.env.S2A_RELEASE === '1';
const ROUTES = ['shm', 'lease', 'die-locked', 'worker', 'setting', 'record',
  'stream', 'acquire', 'session', 'sweep', 'echo', 'sleep', 'content-proxy'];

let d;
before(async () => { d = await new Daemon().start(); });
after(async () => {
  const res = await d.stop();
  assert.equal(res.code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
});

test(RELEASE ? 'a release binary answers 404 under /__test/' : 'the test build serves /__test/', async () => {
  if (!RELEASE) {
    const r = await request(d.base, 'GET', '/__test/shm');
    assert.equal(r.status, 200);
    return;
  }
  for (const route of ROUTES) {
    const r = await request(d.base, 'GET', `/__test/${route}?ttl=1&ms=1`);
    assert.equal(r.status, 404, `GET /__test/${route}`);
    // POST falls through to the static files, which take GET and HEAD.
    const p = await request(d.base, 'POST', `/__test/${route}?ttl=1&ms=1`);
    assert.equal(p.status, 405, `POST /__test/${route}`);
  }
  // The worker still works after them.
  assert.equal((await request(d.base, 'GET', '/healthz')).status, 200);
});

test(RELEASE ? 'a release binary holds no test-hook symbol or string' : 'the test build holds its test hooks', () => {
  const symbols = execFileSync('nm', ['-a', BIN], { encoding: 'utf8', maxBuffer: 64 << 20 })
    .split('\n').filter((l) => /testhook/i.test(l));
  // What `strings` would show: the routes' and the control op's names.
  const bytes = fs.readFileSync(BIN);
  const texts = ['/__test/', 'sweep_now', 'testhooks.c'].filter((s) => bytes.includes(s));
  if (RELEASE) {
    assert.deepEqual(symbols, []);
    assert.deepEqual(texts, []);
  } else {
    assert.ok(symbols.some((l) => /\bs2a_testhooks_dispatch\b/.test(l)), 'nm shows s2a_testhooks_dispatch');
    assert.deepEqual(texts, ['/__test/', 'sweep_now', 'testhooks.c']);
  }
});
