'use strict';
// Admin authentication and the admin settings API.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { Daemon, request, AUTH, BIN } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);

async function login(d, username = 'admin', password = 'admin') {
  return request(d.base, 'POST', '/api/login', { body: json({ username, password }) });
}

function bearer(token) {
  return { Authorization: `Bearer ${token}` };
}

async function withDaemon(fn, opts = {}) {
  const d = await new Daemon(Object.assign({ allowedErrors: [] }, opts)).start();
  try {
    await fn(d);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
}

test('login issues a signed session that every worker accepts; bad logins are 401', async () => {
  await withDaemon(async (d) => {
    assert.match(d.log(), /admin password is still the default/);
    const bad = await login(d, 'admin', 'nope');
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.json, { success: false, token: null, message: 'Invalid credentials', detail: 'Invalid credentials' });
    const badUser = await login(d, 'root', 'admin');
    assert.equal(badUser.status, 401);
    const ok = await login(d);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.success, true);
    assert.equal(ok.json.message, 'Login successful');
    assert.equal(ok.json.default_password, true);
    assert.match(ok.json.token, /^s2a1\.\d+\.\d+\.[0-9a-f]{32}\.[0-9a-f]{64}$/);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(ok.json.expires_at > now + 86000 && ok.json.expires_at <= now + 86401);
    for (let i = 0; i < 12; i++) {
      const r = await request(d.base, 'GET', '/api/session', { headers: bearer(ok.json.token) });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { success: true, username: 'admin', default_password: true });
    }
    // The bare token works too (the reference's UI sends it that way).
    assert.equal((await request(d.base, 'GET', '/api/session', { headers: { Authorization: ok.json.token } })).status, 200);
    // Validation.
    const empty = await request(d.base, 'POST', '/api/login', { body: '' });
    assert.equal(empty.status, 400);
    assert.match(empty.json.detail, /Invalid JSON body/);
    const types = await request(d.base, 'POST', '/api/login', { body: json({ username: 1, password: [] }) });
    assert.equal(types.status, 400);
    const get = await request(d.base, 'GET', '/api/login');
    assert.equal(get.status, 405);
  }, { allowedErrors: [] });
});

test('every other /api route needs a valid session', async () => {
  await withDaemon(async (d) => {
    const none = await request(d.base, 'GET', '/api/admin/config');
    assert.equal(none.status, 401);
    assert.deepEqual(none.json, { detail: 'Missing authorization header' });
    const junk = await request(d.base, 'GET', '/api/admin/config', { headers: bearer('admin-abc') });
    assert.deepEqual(junk.json, { detail: 'Invalid or expired token' });
    const ok = (await login(d)).json.token;
    // Any change to the token breaks its signature.
    const parts = ok.split('.');
    const forged = [parts[0], String(Number(parts[1]) + 1000), parts[2], parts[3], parts[4]].join('.');
    assert.equal((await request(d.base, 'GET', '/api/admin/config', { headers: bearer(forged) })).status, 401);
    const flipped = ok.slice(0, -1) + (ok.endsWith('0') ? '1' : '0');
    assert.equal((await request(d.base, 'GET', '/api/admin/config', { headers: bearer(flipped) })).status, 401);
    // The API key is not an admin credential.
    assert.equal((await request(d.base, 'GET', '/api/admin/config', { headers: AUTH })).status, 401);
    const nf = await request(d.base, 'GET', '/api/nothing-here', { headers: bearer(ok) });
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.json, { detail: 'Not found' });
  });
});

test('logout ends that session only, on every worker and across a restart', async () => {
  const d = await new Daemon().start();
  try {
    const a = (await login(d)).json.token;
    const b = (await login(d)).json.token;
    const out = await request(d.base, 'POST', '/api/logout', { headers: bearer(a) });
    assert.equal(out.status, 200);
    assert.deepEqual(out.json, { success: true, message: 'Logged out successfully' });
    for (let i = 0; i < 6; i++) {
      assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(a) })).status, 401);
      assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(b) })).status, 200);
    }
    assert.equal((await d.stop()).code, 0);
    await d.start();
    assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(a) })).status, 401);
    assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(b) })).status, 200);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('changing the password logs every session out and persists', async () => {
  const d = await new Daemon().start();
  try {
    const a = (await login(d)).json.token;
    const b = (await login(d)).json.token;
    const wrongOld = await request(d.base, 'POST', '/api/admin/password', {
      headers: bearer(a), body: json({ old_password: 'nope', new_password: 'longenough1' }),
    });
    assert.equal(wrongOld.status, 400);
    assert.deepEqual(wrongOld.json, { detail: 'Old password is incorrect', param: 'old_password' });
    const short = await request(d.base, 'POST', '/api/admin/password', {
      headers: bearer(a), body: json({ old_password: 'admin', new_password: 'short' }),
    });
    assert.equal(short.status, 400);
    assert.match(short.json.detail, /at least 8/);
    const ok = await request(d.base, 'POST', '/api/admin/password', {
      headers: bearer(a), body: json({ old_password: 'admin', new_password: 'n3w-secret-pw', username: 'root' }),
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, { success: true, message: 'Password updated successfully. Please login again.' });
    for (const t of [a, b]) {
      assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(t) })).status, 401);
    }
    assert.equal((await login(d, 'admin', 'admin')).status, 401);
    assert.equal((await login(d, 'root', 'admin')).status, 401);
    const fresh = await login(d, 'root', 'n3w-secret-pw');
    assert.equal(fresh.status, 200);
    assert.equal(fresh.json.default_password, false);
    // Stored hashed, never in clear, and no secret in the logs.
    assert.match(d.sqlite("SELECT value FROM settings WHERE key='admin_password_hash'"), /^pbkdf2-sha256\$\d+\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
    assert.doesNotMatch(d.log(), /n3w-secret-pw/);
    assert.equal((await d.stop()).code, 0);
    await d.start();
    assert.doesNotMatch(d.log().split('sora2apid 0.1.0 ready').pop(), /admin password is still the default/);
    assert.equal((await login(d, 'root', 'n3w-secret-pw')).status, 200);
    assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(b) })).status, 401);
    assert.equal((await d.stop()).code, 0);
    d.allowedErrors.push(/never/);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('repeated failed logins are throttled per address', async () => {
  await withDaemon(async (d) => {
    for (let i = 0; i < 4; i++) {
      assert.equal((await login(d, 'admin', `bad${i}`)).status, 401);
    }
    assert.equal((await login(d, 'admin', 'bad5')).status, 401);   // the 5th locks
    const locked = await login(d, 'admin', 'admin');
    assert.equal(locked.status, 429);
    assert.match(locked.json.detail, /Too many failed logins; try again in \d+ seconds/);
    const wait = Number(locked.headers['retry-after']);
    assert.ok(wait > 0 && wait <= 60, `retry-after ${wait}`);
    assert.match(d.log(), /admin login failed from 127\.0\.0\.1; address locked/);
  });
});

test('API key and config changes are persisted and reach every worker', async () => {
  await withDaemon(async (d) => {
    const t = (await login(d)).json.token;
    const bad = await request(d.base, 'POST', '/api/admin/apikey', { headers: bearer(t), body: json({ new_api_key: 'short' }) });
    assert.equal(bad.status, 400);
    const spaced = await request(d.base, 'POST', '/api/admin/apikey', { headers: bearer(t), body: json({ new_api_key: 'has a space in it' }) });
    assert.equal(spaced.status, 400);
    const r = await request(d.base, 'POST', '/api/admin/apikey', { headers: bearer(t), body: json({ new_api_key: 'sk-test-rotated-0001' }) });
    assert.deepEqual(r.json, { success: true, message: 'API key updated' });
    for (let i = 0; i < 8; i++) {
      assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 401);
      assert.equal((await request(d.base, 'GET', '/v1/models', { headers: bearer('sk-test-rotated-0001') })).status, 200);
    }
    const cfg0 = (await request(d.base, 'GET', '/api/admin/config', { headers: bearer(t) })).json;
    assert.deepEqual(cfg0, {
      error_ban_threshold: 3, admin_username: 'admin', log_level: '', debug_enabled: false,
      selection_policy: 'least_busy', session_ttl: 86400, api_key_set: true, default_password: true,
      at_auto_refresh_enabled: true, at_refresh_window: 86400, quota_refresh_interval: 3600,
      queue_timeout: 60, videos_default_mode: 'sync',
    });
    const set = await request(d.base, 'POST', '/api/admin/config', {
      headers: bearer(t), body: json({ error_ban_threshold: 7, selection_policy: 'round_robin', debug_enabled: true }),
    });
    assert.deepEqual(set.json, { success: true, message: 'Configuration updated' });
    const cfg = (await request(d.base, 'GET', '/api/admin/config', { headers: bearer(t) })).json;
    assert.equal(cfg.error_ban_threshold, 7);
    assert.equal(cfg.selection_policy, 'round_robin');
    assert.equal(cfg.log_level, 'debug');
    for (const [body, re] of [
      [{ error_ban_threshold: 'x' }, /must be an integer/],
      [{ error_ban_threshold: 5000 }, /0\.\.1000/],
      [{ selection_policy: 'fastest' }, /least_busy, round_robin or random/],
      [{ session_ttl: 10 }, /300\.\.2592000/],
      [{ surprise: 1 }, /Unknown setting "surprise"/],
      [{}, /No setting given/],
    ]) {
      const e = await request(d.base, 'POST', '/api/admin/config', { headers: bearer(t), body: json(body) });
      assert.equal(e.status, 400, JSON.stringify(body));
      assert.match(e.json.detail, re);
    }
    // A rejected batch changed nothing.
    assert.equal((await request(d.base, 'GET', '/api/admin/config', { headers: bearer(t) })).json.error_ban_threshold, 7);
    assert.equal(d.sqlite("SELECT value FROM settings WHERE key='error_ban_threshold'"), '7');
    assert.doesNotMatch(d.log(), /sk-test-rotated-0001/);
  });
});

test('a session stops working when it expires', async () => {
  await withDaemon(async (d) => {
    // Whole seconds: a 2 s session is valid for at least 1 s.
    const t = (await request(d.base, 'POST', '/__test/session?ttl=2')).json.token;
    assert.equal((await request(d.base, 'GET', '/api/session', { headers: bearer(t) })).status, 200);
    await new Promise((r) => setTimeout(r, 3100));
    const r = await request(d.base, 'GET', '/api/session', { headers: bearer(t) });
    assert.equal(r.status, 401);
    assert.deepEqual(r.json, { detail: 'Invalid or expired token' });
  });
});

test('a stored setting its rules refuse is not used: the log names it and the default stands', async () => {
  await withDaemon(async (d) => {
    assert.match(d.log(), /API key is still the shipped default/);
    assert.equal((await d.stop()).code, 0);
    d.sqlite("UPDATE settings SET value = '2' WHERE key = 'video_timeout'");
    d.sqlite("UPDATE settings SET value = 'often' WHERE key = 'selection_policy'");
    d.sqlite("UPDATE settings SET value = '5000' WHERE key = 'error_ban_threshold'");
    d.sqlite("UPDATE settings SET value = 'ftp://x/{post_id}' WHERE key = 'watermark_third_party_url'");
    await d.start();
    const log = d.log();
    assert.match(log, /\[warn\] \[master pid \d+\] runtime setting video_timeout: the stored value is refused \(video_timeout must be 60\.\.7200 seconds\); using the default "1500"/);
    assert.match(log, /runtime setting selection_policy: the stored value is refused/);
    assert.match(log, /runtime setting error_ban_threshold: the stored value is refused/);
    assert.match(log, /runtime setting watermark_third_party_url: the stored value is refused/);
    const t = (await login(d)).json.token;
    const to = await request(d.base, 'GET', '/api/generation/timeout', { headers: bearer(t) });
    assert.deepEqual(to.json.config, { image_timeout: 300, video_timeout: 1500 });
    const cfg = (await request(d.base, 'GET', '/api/admin/config', { headers: bearer(t) })).json;
    assert.equal(cfg.selection_policy, 'least_busy');
    assert.equal(cfg.error_ban_threshold, 3);
    const wm = (await request(d.base, 'GET', '/api/watermark-free/config', { headers: bearer(t) })).json;
    assert.equal(wm.third_party_url, 'https://oscdn2.dyysy.com/MP4/{post_id}.mp4');
    // The row itself is left as it was: the operator sees what is wrong.
    assert.equal(d.sqlite("SELECT value FROM settings WHERE key='video_timeout'"), '2');
    // A required setting that is corrupt stops the start with a clear line.
    assert.equal((await d.stop()).code, 0);
    d.sqlite("UPDATE settings SET value = 'zz' WHERE key = 'api_key_sha256'");
    const r = spawnSync(BIN, ['-f', '-c', d.confFile], { timeout: 20000, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(d.log(), /setting api_key_sha256 is corrupt/);
    d.sqlite("DELETE FROM settings WHERE key = 'api_key_sha256'");
    await d.start();
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    d.allowedErrors.push(/setting api_key_sha256 is corrupt/, /database: /);
  });
});
