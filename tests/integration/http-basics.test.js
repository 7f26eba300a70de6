'use strict';
// The HTTP surface of the foundation: auth, models, errors, CORS, health.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Daemon, request, AUTH } = require('./lib/daemon');

const MODELS = [
  'sora-image', 'sora-image-landscape', 'sora-image-portrait',
  'sora-video-10s', 'sora-video-15s',
  'sora-video-landscape-10s', 'sora-video-landscape-15s',
  'sora-video-portrait-10s', 'sora-video-portrait-15s',
];

let d;
before(async () => { d = await new Daemon().start(); });
after(async () => {
  const res = await d.stop();
  assert.equal(res.code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
});

function assertAuthError(r) {
  assert.equal(r.status, 401);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.equal(r.json.error.code, 'invalid_api_key');
  assert.equal(r.json.error.param, null);
  assert.equal(typeof r.json.error.message, 'string');
}

test('GET /v1/models lists the nine models in contract order', async () => {
  const r = await request(d.base, 'GET', '/v1/models', { headers: AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.json.object, 'list');
  assert.deepEqual(r.json.data.map((m) => m.id), MODELS);
  for (const m of r.json.data) {
    assert.deepEqual(Object.keys(m).sort(), ['created', 'id', 'object', 'owned_by']);
    assert.equal(m.object, 'model');
    assert.equal(Number.isInteger(m.created), true);
    assert.equal(m.owned_by, 'openai');
  }
  assert.match(r.headers['x-request-id'], /^[0-9a-f]{16}$/);
});

test('GET /v1/models/{id} returns one model or 404', async () => {
  const r = await request(d.base, 'GET', '/v1/models/sora-video-portrait-15s', { headers: AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.json.id, 'sora-video-portrait-15s');
  assert.equal(r.json.object, 'model');
  const nf = await request(d.base, 'GET', '/v1/models/gpt-4', { headers: AUTH });
  assert.equal(nf.status, 404);
  assert.equal(nf.json.error.code, 'model_not_found');
  assert.equal(nf.json.error.param, 'model');
  assert.equal(nf.json.error.type, 'invalid_request_error');
});

test('missing, malformed and wrong API keys get 401 with the OpenAI envelope', async () => {
  assertAuthError(await request(d.base, 'GET', '/v1/models'));
  assertAuthError(await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Basic aGFuMTIzNA==' } }));
  assertAuthError(await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer han12345' } }));
  assertAuthError(await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer ' } }));
  assertAuthError(await request(d.base, 'POST', '/v1/chat/completions', { body: '{}' }));
  const ok = await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'bearer han1234' } });
  assert.equal(ok.status, 200);
});

test('unknown routes answer 404 JSON, wrong methods 405 JSON with Allow', async () => {
  const a = await request(d.base, 'GET', '/v1/nope', { headers: AUTH });
  assert.equal(a.status, 404);
  assert.equal(a.json.error.code, 'unknown_url');
  assert.equal(a.json.error.type, 'invalid_request_error');
  const b = await request(d.base, 'GET', '/api/nope');
  assert.equal(b.status, 401);
  assert.deepEqual(b.json, { detail: 'Missing authorization header' });
  const c = await request(d.base, 'DELETE', '/v1/models', { headers: AUTH });
  assert.equal(c.status, 405);
  assert.equal(c.headers.allow, 'GET, HEAD');
  assert.equal(c.json.error.code, 'method_not_allowed');
  const e = await request(d.base, 'POST', '/index.html', { body: 'x' });
  assert.equal(e.status, 405);
  assert.equal(e.headers.allow, 'GET, HEAD');
});

test('CORS preflight is answered without auth', async () => {
  const r = await request(d.base, 'OPTIONS', '/v1/chat/completions', {
    headers: {
      Origin: 'https://chat.example',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization, content-type',
    },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.match(r.headers['access-control-allow-methods'], /POST/);
  assert.equal(r.headers['access-control-allow-headers'], 'authorization, content-type');
  assert.equal(r.body.length, 0);
  const g = await request(d.base, 'GET', '/v1/models', { headers: AUTH });
  assert.equal(g.headers['access-control-allow-origin'], '*');
});

test('health and readiness', async () => {
  const h = await request(d.base, 'GET', '/healthz');
  assert.equal(h.status, 200);
  assert.deepEqual(h.json, { status: 'ok' });
  const r = await request(d.base, 'GET', '/readyz');
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'ready');
  assert.equal(r.json.database, 'ok');
  assert.equal(r.json.shm, 'ok');
});

test('HEAD answers headers with the GET length and no body', async () => {
  const g = await request(d.base, 'GET', '/v1/models', { headers: AUTH });
  const h = await request(d.base, 'HEAD', '/v1/models', { headers: AUTH });
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
  assert.equal(Number(h.headers['content-length']), g.body.length);
});

test('keep-alive connections serve many requests', async () => {
  const http = require('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 20; i++) {
    const r = await request(d.base, 'GET', '/v1/models', { headers: AUTH, agent });
    assert.equal(r.status, 200);
  }
  agent.destroy();
});

test('every request gets an access log line without secrets', async () => {
  await request(d.base, 'GET', '/v1/models?key=supersecret', { headers: AUTH });
  const { waitFor } = require('./lib/daemon');
  const fs = require('node:fs');
  const text = await waitFor(() => {
    const t = fs.readFileSync(d.accessLog, 'utf8');
    return t.includes('"GET /v1/models"') ? t : null;
  }, { what: 'access log line' });
  assert.doesNotMatch(text, /supersecret/);
  assert.doesNotMatch(text + d.log(), /han1234/);
  assert.match(text, /"GET \/v1\/models" 200 \d+ [\d.]+ [0-9a-f]{16} "/);
});
