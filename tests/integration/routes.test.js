'use strict';
// The one route table: 405 with the Allow header it derives, 404s, the
// error envelope of each family, auth before method, path parameters.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { request, waitFor, AUTH } = require('./lib/daemon');
const { startPool, stopPool } = require('./lib/fake');

const json = (o) => JSON.stringify(o);
let fake;
let d;
let H;

before(async () => {
  ({ fake, d, H } = await startPool());
});
after(() => stopPool({ fake, d }));

function assertOpenAIError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.equal(r.json.error.code, code);
  assert.equal(r.json.error.param, null);
  assert.equal(typeof r.json.error.message, 'string');
}

test('/api routes answer 405 with every method the table has for the path', async () => {
  const cases = [
    // [method, path, needs a session, Allow]
    ['GET', '/api/login', false, 'POST'],
    ['PATCH', '/api/tokens/7', true, 'PUT, DELETE'],
    ['DELETE', '/api/admin/config', true, 'GET, HEAD, POST'],
    ['PUT', '/api/tokens', true, 'GET, HEAD, POST'],
    ['GET', '/api/tokens/7/enable', true, 'POST'],
    ['POST', '/api/tokens/7/status', true, 'PUT'],
    ['DELETE', '/api/tokens/export', true, 'GET, HEAD'],
    ['GET', '/api/tokens/import', true, 'POST'],
    ['POST', '/api/logs', true, 'GET, HEAD'],
    ['DELETE', '/api/tasks', true, 'GET, HEAD'],
    ['PUT', '/api/stats', true, 'GET, HEAD'],
    ['GET', '/api/logout', true, 'POST'],
    ['POST', '/api/session', true, 'GET, HEAD'],
    ['PUT', '/api/cache/config', true, 'GET, HEAD, POST'],
  ];
  for (const [m, p, session, allow] of cases) {
    const r = await request(d.base, m, p, { headers: session ? H : {}, body: '{}' });
    assert.equal(r.status, 405, `${m} ${p}: ${r.text}`);
    assert.equal(r.headers.allow, allow, `${m} ${p}`);
    assert.deepEqual(r.json, { detail: 'Method not allowed' }, `${m} ${p}`);
    // The admin API is not open to other origins by default.
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  }
});

test('the session is checked before the method is revealed', async () => {
  for (const [m, p] of [['PATCH', '/api/tokens/7'], ['DELETE', '/api/admin/config'], ['POST', '/api/logs'],
    ['GET', '/api/nope'], ['GET', '/api/tokens/abc']]) {
    const r = await request(d.base, m, p);
    assert.equal(r.status, 401, `${m} ${p}`);
    assert.deepEqual(r.json, { detail: 'Missing authorization header' });
    assert.equal(r.headers.allow, undefined);
  }
});

test('/v1 routes answer 405 and 404 in the OpenAI envelope, after the API key', async () => {
  let r = await request(d.base, 'GET', '/v1/chat/completions', { headers: AUTH });
  assertOpenAIError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.allow, 'POST');
  r = await request(d.base, 'POST', '/v1/models', { headers: AUTH, body: '{}' });
  assertOpenAIError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.allow, 'GET, HEAD');
  r = await request(d.base, 'DELETE', '/v1/models/sora-image', { headers: AUTH });
  assertOpenAIError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.allow, 'GET, HEAD');
  for (const p of ['/v1/nope', '/v1', '/v1/chat/completions/x', '/v1/models/x/y/../z']) {
    r = await request(d.base, 'GET', p, { headers: AUTH });
    if (p.startsWith('/v1/models/')) {
      assert.equal(r.status, 404);
      assert.equal(r.json.error.code, 'model_not_found');
      continue;
    }
    assertOpenAIError(r, 404, 'unknown_url');
    assert.match(r.json.error.message, /^Unknown request URL: GET \/v1/);
  }
  // Without the key, neither the method nor the path is revealed.
  for (const [m, p] of [['GET', '/v1/chat/completions'], ['GET', '/v1/nope'], ['DELETE', '/v1/models']]) {
    r = await request(d.base, m, p);
    assertOpenAIError(r, 401, 'invalid_api_key');
    assert.equal(r.headers.allow, undefined);
  }
});

test('unknown /api paths are 404 {"detail"} once the session is valid', async () => {
  for (const p of ['/api/nope', '/api/tokens/7/nope', '/api/tokens/7/', '/api/admin', '/api/admin/config/x']) {
    const r = await request(d.base, 'GET', p, { headers: H });
    assert.equal(r.status, 404, p);
    assert.deepEqual(r.json, { detail: 'Not found' }, p);
  }
});

test('path parameters reach their handlers', async () => {
  const acc = await fake.account();
  let r = await request(d.base, 'POST', '/api/tokens', { headers: H, body: json({ token: acc.access_token }) });
  assert.equal(r.status, 200, r.text);
  const id = r.json.token_id;
  r = await request(d.base, 'PUT', `/api/tokens/${id}`, { headers: H, body: json({ remark: 'routed' }) });
  assert.deepEqual(r.json, { success: true, message: 'Token updated' });
  const listed = (await request(d.base, 'GET', '/api/tokens', { headers: H })).json.find((t) => t.id === id);
  assert.equal(listed.remark, 'routed');
  r = await request(d.base, 'POST', `/api/tokens/${id}/test`, { headers: H });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'success');
  r = await request(d.base, 'POST', `/api/tokens/${id}/disable`, { headers: H });
  assert.equal(r.json.is_active, 0);
  r = await request(d.base, 'DELETE', `/api/tokens/${id}`, { headers: H });
  assert.deepEqual(r.json, { success: true, message: 'Token deleted' });
  r = await request(d.base, 'DELETE', `/api/tokens/${id}`, { headers: H });
  assert.equal(r.status, 404);
  assert.deepEqual(r.json, { detail: 'Token not found' });
  // The largest id that fits reaches the handler: an unknown token.
  r = await request(d.base, 'PUT', '/api/tokens/9223372036854775807', { headers: H, body: json({ remark: 'x' }) });
  assert.deepEqual(r.json, { detail: 'Token not found' });

  r = await request(d.base, 'GET', '/v1/models/sora-video-10s', { headers: AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.json.id, 'sora-video-10s');
  r = await request(d.base, 'GET', '/v1/models/', { headers: AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.json.object, 'list');
});

test('a non-numeric, zero, signed, padded or overflowing {id} is a clean 404', async () => {
  for (const id of ['abc', '0', '-1', '+1', '01', '1x', '1.5', '9223372036854775808',
    '99999999999999999999999999', '%20']) {
    for (const [m, suffix] of [['PUT', ''], ['DELETE', ''], ['POST', '/test'], ['POST', '/enable']]) {
      const r = await request(d.base, m, `/api/tokens/${id}${suffix}`, { headers: H, body: '{}' });
      assert.equal(r.status, 404, `${m} ${id}${suffix}: ${r.text}`);
      assert.deepEqual(r.json, { detail: 'Not found' });
    }
  }
});

test('public paths: health, media and the admin UI fallback', async () => {
  let r = await request(d.base, 'DELETE', '/healthz');
  assertOpenAIError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.allow, 'GET, HEAD');
  r = await request(d.base, 'POST', '/tmp/abc.png', { body: 'x' });
  assertOpenAIError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.allow, 'GET, HEAD');
  r = await request(d.base, 'GET', '/tmp/missing.png');
  assert.equal(r.status, 404);
  fs.writeFileSync(path.join(d.dir, 'ui', 'index.html'), '<!doctype html><title>ui</title>');
  r = await request(d.base, 'GET', '/');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /^text\/html/);
  // "/api" alone is not the admin API: a static path.
  r = await request(d.base, 'PUT', '/api', { body: 'x' });
  assertOpenAIError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.allow, 'GET, HEAD');
  // Preflight needs no credential outside the admin API; there only an
  // allowed origin (admin_cors_origins, empty here) gets one.
  for (const p of ['/v1/chat/completions', '/']) {
    r = await request(d.base, 'OPTIONS', p, { headers: { Origin: 'https://ui.example', 'Access-Control-Request-Method': 'PUT' } });
    assert.equal(r.status, 204, p);
    assert.equal(r.headers['access-control-allow-origin'], '*');
  }
  r = await request(d.base, 'OPTIONS', '/api/tokens/7', { headers: { Origin: 'https://ui.example', 'Access-Control-Request-Method': 'PUT' } });
  assert.equal(r.status, 401);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('usage counters keep their route names', async () => {
  await request(d.base, 'GET', '/v1/route-counter-probe', { headers: AUTH });
  await request(d.base, 'GET', '/api/stats', { headers: H });
  const count = (route, status) => Number(d.sqlite(
    `SELECT COALESCE(SUM(count),0) FROM usage_daily WHERE route='${route}' AND status=${status}`));
  await waitFor(() => count('unknown', 404) >= 1 && count('tokens', 200) >= 1 && count('preflight', 204) >= 2,
    { what: 'usage rows' });
  assert.ok(count('admin', 405) >= 1);
  assert.ok(count('tokens', 405) >= 1);
  assert.ok(count('models', 200) >= 1);
  assert.ok(count('static', 200) >= 1);
  assert.ok(count('media', 405) >= 1);
  assert.ok(count('health', 405) >= 1);
});
