'use strict';
// Cached media at /tmp/<name>: ranges, validators, path tricks, the
// cache settings and the master's expiry sweep.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Daemon, request, raw, waitFor } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);
let d;
let H;
let cache;
const video = Buffer.alloc(1000);
for (let i = 0; i < video.length; i++) video[i] = i % 251;

before(async () => {
  d = await new Daemon().start();
  cache = path.join(d.dir, 'cache');
  fs.writeFileSync(path.join(cache, 'a1B2_c-3.mp4'), video);
  fs.writeFileSync(path.join(cache, 'pic.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
  fs.writeFileSync(path.join(d.dir, 'outside.mp4'), 'SECRET');
  fs.symlinkSync(path.join(d.dir, 'outside.mp4'), path.join(cache, 'link.mp4'));
  fs.writeFileSync(path.join(cache, 'notes.txt'), 'x');
  const r = await request(d.base, 'POST', '/api/login', { body: json({ username: 'admin', password: 'admin' }) });
  H = { Authorization: `Bearer ${r.json.token}` };
});
after(async () => {
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
});

test('a cached video is served whole, with validators and range support', async () => {
  const r = await request(d.base, 'GET', '/tmp/a1B2_c-3.mp4');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'video/mp4');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.ok(r.body.equals(video));
  const png = await request(d.base, 'GET', '/tmp/pic.png');
  assert.equal(png.headers['content-type'], 'image/png');
  const cond = await request(d.base, 'GET', '/tmp/a1B2_c-3.mp4', { headers: { 'If-None-Match': r.headers.etag } });
  assert.equal(cond.status, 304);
  const head = await request(d.base, 'HEAD', '/tmp/a1B2_c-3.mp4');
  assert.equal(Number(head.headers['content-length']), 1000);
  assert.equal(head.body.length, 0);
});

test('byte ranges: first, open-ended, suffix, unsatisfiable, multiple', async () => {
  const get = (range) => request(d.base, 'GET', '/tmp/a1B2_c-3.mp4', { headers: { Range: range } });
  let r = await get('bytes=0-99');
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], 'bytes 0-99/1000');
  assert.ok(r.body.equals(video.subarray(0, 100)));
  r = await get('bytes=900-');
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], 'bytes 900-999/1000');
  assert.ok(r.body.equals(video.subarray(900)));
  r = await get('bytes=-10');
  assert.equal(r.headers['content-range'], 'bytes 990-999/1000');
  assert.equal(r.body.length, 10);
  r = await get('bytes=500-5000');
  assert.equal(r.headers['content-range'], 'bytes 500-999/1000');
  r = await get('bytes=1000-');
  assert.equal(r.status, 416);
  assert.equal(r.headers['content-range'], 'bytes */1000');
  assert.equal(r.json.error.code, 'range_not_satisfiable');
  r = await get('bytes=0-1,5-6');
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 1000);
  r = await get('items=0-1');
  assert.equal(r.status, 200);
});

test('nothing outside the cache, and no odd name, is served', async () => {
  const tricks = ['/tmp/../data/sora2api.db', '/tmp/%2e%2e/outside.mp4', '/tmp/..%2foutside.mp4',
    '/tmp/link.mp4', '/tmp/notes.txt', '/tmp/.hidden.mp4', '/tmp/a1B2_c-3.mp4/',
    '/tmp/sub/a1B2_c-3.mp4', '/tmp/a1B2_c-3.mp4.mp4', '/tmp/', '/tmp/missing.mp4'];
  for (const t of tricks) {
    const r = await raw(d.port, `GET ${t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.doesNotMatch(r.data, /SECRET|SQLite/, t);
    assert.match(r.data, /^HTTP\/1\.1 (404|400) /, `${t}: ${r.data.slice(0, 30)}`);
  }
  const post = await request(d.base, 'POST', '/tmp/a1B2_c-3.mp4', { body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
});

test('cache settings as the reference exposes them', async () => {
  let r = await request(d.base, 'GET', '/api/cache/config', { headers: H });
  assert.deepEqual(r.json, { success: true, config: { enabled: false, timeout: 600, base_url: '',
    effective_base_url: `http://127.0.0.1:${d.port}` } });
  r = await request(d.base, 'POST', '/api/cache/config', { headers: H, body: json({ timeout: 30 }) });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /between 60 seconds and 24 hours/);
  r = await request(d.base, 'POST', '/api/cache/config', { headers: H, body: json({ timeout: 90000 }) });
  assert.equal(r.status, 400);
  r = await request(d.base, 'POST', '/api/cache/config', { headers: H, body: json({ timeout: 120 }) });
  assert.deepEqual(r.json, { success: true, message: 'Cache timeout updated', timeout: 120 });
  r = await request(d.base, 'POST', '/api/cache/base-url', { headers: H, body: json({ base_url: '  https://cdn.example.com/media/ ' }) });
  assert.deepEqual(r.json, { success: true, message: 'Cache base URL updated', base_url: 'https://cdn.example.com/media' });
  r = await request(d.base, 'POST', '/api/cache/base-url', { headers: H, body: json({ base_url: 'ftp://x' }) });
  assert.equal(r.status, 400);
  r = await request(d.base, 'POST', '/api/cache/enabled', { headers: H, body: json({ enabled: true }) });
  assert.deepEqual(r.json, { success: true, message: 'Cache enabled', enabled: true });
  r = await request(d.base, 'GET', '/api/cache/config', { headers: H });
  assert.deepEqual(r.json.config, { enabled: true, timeout: 120, base_url: 'https://cdn.example.com/media',
    effective_base_url: 'https://cdn.example.com/media' });
  r = await request(d.base, 'POST', '/api/cache/base-url', { headers: H, body: json({ base_url: '' }) });
  assert.equal(r.json.base_url, '');
});

test('the master sweeps files older than the cache timeout', async () => {
  const old = path.join(cache, 'old0001.png');
  const fresh = path.join(cache, 'new0001.png');
  const part = path.join(cache, '.dl-0001.part');
  const stalePart = path.join(cache, '.dl-0002.part');
  for (const f of [old, fresh, part, stalePart]) fs.writeFileSync(f, 'x');
  const t = Date.now() / 1000;
  fs.utimesSync(old, t - 300, t - 300);          // older than 120 s
  fs.utimesSync(part, t - 300, t - 300);         // in progress: kept a day
  fs.utimesSync(stalePart, t - 90000, t - 90000);
  await request(d.base, 'POST', '/__test/sweep');
  await waitFor(() => !fs.existsSync(old), { what: 'old file removed' });
  assert.ok(fs.existsSync(fresh));
  assert.ok(fs.existsSync(part));
  assert.ok(!fs.existsSync(stalePart));
  assert.equal((await request(d.base, 'GET', '/tmp/old0001.png')).status, 404);
});
