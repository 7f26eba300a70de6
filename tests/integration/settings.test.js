'use strict';
// Proxy, watermark-free and generation-timeout settings; the proxy really
// carries upstream calls once enabled.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { request, freePort } = require('./lib/daemon');
const { startPool, stopPool } = require('./lib/fake');

const json = (o) => JSON.stringify(o);
let fake;
let d;
let H;
let proxy;
let proxied = [];

// A minimal forward proxy: absolute-form requests are passed on.
function startProxy() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      proxied.push(req.url);
      const u = new URL(req.url);
      const up = http.request({ hostname: u.hostname, port: u.port, path: u.pathname + u.search,
        method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => { res.writeHead(502); res.end(); });
      req.pipe(up);
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

before(async () => {
  proxy = await startProxy();
  ({ fake, d, H } = await startPool());
});
after(async () => {
  proxy.close();
  await stopPool({ fake, d });
});

test('proxy settings, a proxy test call, and upstream calls through the proxy', async () => {
  const purl = `http://127.0.0.1:${proxy.address().port}`;
  let r = await request(d.base, 'GET', '/api/proxy/config', { headers: H });
  assert.deepEqual(r.json, { proxy_enabled: false, proxy_url: '' });
  r = await request(d.base, 'POST', '/api/proxy/config', { headers: H, body: json({ proxy_enabled: true, proxy_url: 'gopher://x' }) });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /http, https, socks5 or socks5h/);
  r = await request(d.base, 'POST', '/api/proxy/test', { headers: H, body: json({ proxy_url: purl }) });
  assert.equal(r.json.success, true, r.text);
  assert.equal(r.json.status, 401);
  assert.ok(proxied.some((u) => u.endsWith('/backend/me')));
  const dead = `http://127.0.0.1:${await freePort()}`;
  r = await request(d.base, 'POST', '/api/proxy/test', { headers: H, body: json({ proxy_url: dead }) });
  assert.equal(r.json.success, false);
  assert.match(r.json.message, /^No answer/);
  r = await request(d.base, 'POST', '/api/proxy/config', { headers: H, body: json({ proxy_enabled: true, proxy_url: purl }) });
  assert.deepEqual(r.json, { success: true, message: 'Proxy configuration updated' });
  r = await request(d.base, 'GET', '/api/proxy/config', { headers: H });
  assert.deepEqual(r.json, { proxy_enabled: true, proxy_url: purl });
  proxied = [];
  const acc = await fake.account();
  r = await request(d.base, 'POST', '/api/tokens', { headers: H, body: json({ token: acc.access_token }) });
  assert.equal(r.status, 200, r.text);
  assert.ok(proxied.some((u) => u.endsWith('/backend/me')), JSON.stringify(proxied));
  assert.ok(proxied.some((u) => u.endsWith('/backend/nf/check')));
  assert.doesNotMatch(d.log(), new RegExp(`127\\.0\\.0\\.1:${proxy.address().port}`));
  r = await request(d.base, 'POST', '/api/proxy/config', { headers: H, body: json({ proxy_enabled: false }) });
  assert.equal(r.status, 200);
  proxied = [];
  await request(d.base, 'POST', `/api/tokens/${(await request(d.base, 'GET', '/api/tokens', { headers: H })).json[0].id}/test`, { headers: H });
  assert.deepEqual(proxied, []);
});

test('watermark-free settings', async () => {
  let r = await request(d.base, 'GET', '/api/watermark-free/config', { headers: H });
  assert.deepEqual(r.json, { watermark_free_enabled: false, parse_method: 'third_party', custom_parse_url: '',
    custom_parse_token: '', third_party_url: 'https://oscdn2.dyysy.com/MP4/{post_id}.mp4' });
  r = await request(d.base, 'POST', '/api/watermark-free/config', { headers: H,
    body: json({ watermark_free_enabled: true, parse_method: 'custom', custom_parse_url: `${fake.url}`, custom_parse_token: 'tok-1' }) });
  assert.deepEqual(r.json, { success: true, message: 'Watermark-free mode configuration updated' });
  r = await request(d.base, 'GET', '/api/watermark-free/config', { headers: H });
  assert.equal(r.json.parse_method, 'custom');
  assert.equal(r.json.custom_parse_token, 'tok-1');
  for (const [body, re] of [
    [{ watermark_free_enabled: 'yes' }, /must be a boolean/],
    [{ watermark_free_enabled: true, parse_method: 'magic' }, /third_party or custom/],
    [{ watermark_free_enabled: true, third_party_url: 'https://cdn.example/x.mp4' }, /\{post_id\}/],
    [{ watermark_free_enabled: true, custom_parse_url: 'nope' }, /http\(s\) URL/],
  ]) {
    const e = await request(d.base, 'POST', '/api/watermark-free/config', { headers: H, body: json(body) });
    assert.equal(e.status, 400, JSON.stringify(body));
    assert.match(e.json.detail, re);
  }
  assert.doesNotMatch(d.log(), /tok-1/);
});

test('generation timeouts', async () => {
  let r = await request(d.base, 'GET', '/api/generation/timeout', { headers: H });
  assert.deepEqual(r.json, { success: true, config: { image_timeout: 300, video_timeout: 1500 } });
  r = await request(d.base, 'POST', '/api/generation/timeout', { headers: H, body: json({ image_timeout: 30 }) });
  assert.equal(r.status, 400);
  assert.match(r.json.detail, /60\.\.3600/);
  r = await request(d.base, 'POST', '/api/generation/timeout', { headers: H, body: json({ video_timeout: 9000 }) });
  assert.equal(r.status, 400);
  r = await request(d.base, 'POST', '/api/generation/timeout', { headers: H, body: json({ video_timeout: 3000 }) });
  assert.deepEqual(r.json, { success: true, message: 'Generation timeout updated', config: { image_timeout: 300, video_timeout: 3000 } });
  r = await request(d.base, 'GET', '/api/generation/timeout', { headers: H });
  assert.deepEqual(r.json.config, { image_timeout: 300, video_timeout: 3000 });
  r = await request(d.base, 'POST', '/api/generation/timeout', { headers: H, body: json({}) });
  assert.equal(r.status, 400);
});
