'use strict';
// Admin hardening: login throttling that parallel guesses cannot outrun,
// secrets at rest, what a worker keeps after fork, one daemon per data_dir.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const { Daemon, request, AUTH, BIN } = require('./lib/daemon');

const json = (o) => JSON.stringify(o);

function login(d, username, password, headers = {}) {
  const agent = new http.Agent({ keepAlive: false });
  return request(d.base, 'POST', '/api/login', { body: json({ username, password }), headers, agent, timeout: 60000 });
}

async function loginChecks(d) {
  return (await request(d.base, 'GET', '/__test/shm')).json.login_checks;
}

test('100 parallel wrong logins from one address get at most 5 password checks; the lock survives a restart', async () => {
  const d = new Daemon({ allowedErrors: [] });
  try {
    await d.start();
    const before = await loginChecks(d);
    const all = await Promise.all(Array.from({ length: 100 }, (_, i) => login(d, 'admin', `wrong-${i}`)));
    const checks = (await loginChecks(d)) - before;
    const statuses = all.map((r) => r.status);
    const refused = all.filter((r) => r.status === 429);
    console.log(`password checks evaluated for 100 parallel guesses: ${checks}`);
    assert.ok(checks <= 5, `password checks ${checks}`);
    assert.equal(statuses.filter((s) => s === 401).length, checks);
    assert.equal(refused.length, 100 - checks);
    for (const r of refused) {
      const wait = Number(r.headers['retry-after']);
      assert.ok(wait > 0 && wait <= 3600, `retry-after ${r.headers['retry-after']}`);
    }
    // The right password from the locked address is refused too, and an
    // untrusted peer cannot pick another address with X-Forwarded-For.
    assert.equal((await login(d, 'admin', 'admin')).status, 429);
    assert.equal((await login(d, 'admin', 'admin', { 'X-Forwarded-For': '10.5.5.5' })).status, 429);
    assert.equal((await d.stop()).code, 0);
    await d.start();
    const again = await login(d, 'admin', 'admin');
    assert.equal(again.status, 429, 'the lock survives a restart');
    assert.ok(Number(again.headers['retry-after']) > 0);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('behind a trusted proxy: per-address locks by X-Forwarded-For, a gentler per-user lock that a clean address passes', async () => {
  const d = new Daemon({ conf: { server: { trusted_proxies: '127.0.0.0/8 ::1' } } });
  const from = (ip, pw) => login(d, 'admin', pw, { 'X-Forwarded-For': `${ip}, 127.0.0.1` });
  try {
    await d.start();
    for (let i = 0; i < 5; i++) assert.equal((await from('10.0.0.1', `bad${i}`)).status, 401);
    assert.equal((await from('10.0.0.1', 'admin')).status, 429);
    assert.match(d.log(), /admin login failed from 10\.0\.0\.1; address locked/);
    // Another client behind the same proxy is not locked out.
    assert.equal((await from('10.0.0.2', 'admin')).status, 200);
    // 20 guesses from 20 addresses lock the user name ...
    for (let i = 0; i < 20; i++) assert.equal((await from(`10.1.0.${i}`, `guess${i}`)).status, 401);
    const r = await from('10.1.0.3', 'admin');
    assert.equal(r.status, 429, 'an address that already guessed waits for the user lock');
    assert.ok(Number(r.headers['retry-after']) > 0 && Number(r.headers['retry-after']) <= 60);
    // ... but the admin from a clean address still gets in.
    assert.equal((await from('10.3.0.1', 'admin')).status, 200);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

// Every readable private mapping of `pid` searched for `needle`.
function memoryHas(pid, needle) {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const line of maps) {
      const [range, perms] = line.split(/\s+/);
      if (perms[0] !== 'r' || /\[(vvar|vsyscall)\]/.test(line)) continue;
      const [lo, hi] = range.split('-').map((h) => BigInt(`0x${h}`));
      const len = Number(hi - lo);
      if (len > 256 * 1024 * 1024) continue;
      const buf = Buffer.alloc(len);
      let got = 0;
      try { got = fs.readSync(fd, buf, 0, len, lo); } catch (_) { continue; }
      if (buf.subarray(0, got).indexOf(needle) >= 0) return line;
    }
  } finally {
    fs.closeSync(fd);
  }
  return null;
}

test('a worker holds no descriptor or mapping of the database, its WAL or secret.key, nor the key bytes', async () => {
  const d = new Daemon();
  try {
    await d.start();
    // Something written, so the WAL exists and the master has it open.
    const t = (await login(d, 'admin', 'admin')).json.token;
    assert.equal((await request(d.base, 'POST', '/api/admin/config', {
      headers: { Authorization: `Bearer ${t}` }, body: json({ error_ban_threshold: 4 }),
    })).status, 200);
    const dataDir = fs.realpathSync(path.join(d.dir, 'data'));
    const isMaster = (p) => p.startsWith(dataDir + '/') && /(sora2api\.db(-wal|-shm|-journal)?|secret\.key|sora2apid\.lock)$/.test(p);
    const links = (pid) => fs.readdirSync(`/proc/${pid}/fd`).map((f) => {
      try { return fs.readlinkSync(`/proc/${pid}/fd/${f}`); } catch (_) { return ''; }
    });
    assert.ok(links(d.pid).some((p) => p === path.join(dataDir, 'sora2api.db')), 'the master has the database open');
    const key = fs.readFileSync(path.join(dataDir, 'secret.key'));
    assert.equal(key.length, 32);
    const workers = d.workers();
    assert.ok(workers.length >= 2);
    for (const w of workers) {
      assert.deepEqual(links(w).filter(isMaster), [], `worker ${w} fds`);
      const maps = fs.readFileSync(`/proc/${w}/maps`, 'utf8');
      assert.ok(!maps.split('\n').some((l) => isMaster(l.slice(l.indexOf('/')))), `worker ${w} maps`);
      assert.equal(memoryHas(w, key), null, `secret.key bytes in worker ${w}`);
    }
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('a second daemon on the same data_dir refuses to start with status 1', async () => {
  const d = new Daemon();
  try {
    await d.start();
    const conf2 = path.join(d.dir, 'second.conf');
    const text = d.confText({ server: { listen: '127.0.0.1:0', pidfile: path.join(d.dir, 'second.pid') },
      log: { error_log: path.join(d.dir, 'second.log') } });
    fs.writeFileSync(conf2, text);
    const r = spawnSync(BIN, ['-f', '-c', conf2], { encoding: 'utf8', timeout: 15000 });
    assert.equal(r.status, 1, r.stderr);
    const log2 = fs.readFileSync(path.join(d.dir, 'second.log'), 'utf8');
    assert.match(log2, /data_dir ".*" is in use by another sora2apid \(pid \d+\)/);
    // The first one still serves, and its pid file is untouched.
    assert.equal((await request(d.base, 'GET', '/healthz')).status, 200);
    assert.equal(fs.readFileSync(d.pidFile, 'utf8').trim(), String(d.pid));
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});

test('the database, its WAL and index and secret.key are mode 0600', async () => {
  const d = new Daemon();
  try {
    await d.start();
    const t = (await login(d, 'admin', 'admin')).json.token;
    await request(d.base, 'POST', '/api/admin/config', { headers: { Authorization: `Bearer ${t}` }, body: json({ error_ban_threshold: 4 }) });
    const data = path.join(d.dir, 'data');
    for (const f of ['sora2api.db', 'sora2api.db-wal', 'sora2api.db-shm', 'secret.key', 'sora2apid.lock']) {
      assert.equal(fs.statSync(path.join(data, f)).mode & 0o777, 0o600, f);
    }
    assert.equal((await d.stop()).code, 0);
    // An existing database with looser modes is tightened at start.
    fs.chmodSync(path.join(data, 'sora2api.db'), 0o644);
    fs.chmodSync(path.join(data, 'secret.key'), 0o644);
    await d.start();
    for (const f of ['sora2api.db', 'secret.key']) {
      assert.equal(fs.statSync(path.join(data, f)).mode & 0o777, 0o600, f);
    }
    assert.equal((await d.stop()).code, 0);
  } finally {
    d.cleanup();
  }
});

test('secrets at rest: the session secret is sealed, the API key a keyed HMAC; older clear values migrate', async () => {
  const crypto = require('node:crypto');
  const d = new Daemon();
  try {
    await d.start();
    const stored = (k) => d.sqlite(`SELECT value FROM settings WHERE key = '${k}'`);
    assert.match(stored('session_secret'), /^v1:/);
    const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
    assert.match(stored('api_key_sha256'), /^hmac-sha256:[0-9a-f]{64}$/);
    assert.ok(!stored('api_key_sha256').includes(sha('han1234')));
    assert.match(d.log(), /the API key is still the shipped default/);
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 200);
    assert.equal((await d.stop()).code, 0);

    // What an older version stored: the secret in clear, a bare SHA-256.
    const secret = crypto.randomBytes(32).toString('hex');
    d.sqlite(`UPDATE settings SET value = '${secret}' WHERE key = 'session_secret';` +
      `UPDATE settings SET value = '${sha('sk-legacy-key-0001')}' WHERE key = 'api_key_sha256'`);
    await d.start();
    assert.match(stored('session_secret'), /^v1:/);
    assert.ok(!d.sqlite('SELECT group_concat(value) FROM settings').includes(secret));
    assert.match(stored('api_key_sha256'), /^hmac-sha256:/);
    assert.match(d.log(), /session_secret: sealed under secret.key/);
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer sk-legacy-key-0001' } })).status, 200);
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: AUTH })).status, 401);
    // A session signed with the migrated secret (as an older daemon would
    // have issued) is still accepted: the secret itself did not change.
    const nonce = crypto.randomBytes(16).toString('hex');
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const body = `s2a1.${exp}.1.${nonce}`;
    const mac = crypto.createHmac('sha256', Buffer.from(secret, 'hex')).update(body).digest('hex');
    const session = await request(d.base, 'GET', '/api/session', { headers: { Authorization: `Bearer ${body}.${mac}` } });
    assert.equal(session.status, 200, 'a session of the old secret');
    // A new key set through the admin API is stored keyed too.
    const t = (await login(d, 'admin', 'admin')).json.token;
    assert.equal((await request(d.base, 'POST', '/api/admin/apikey', { headers: { Authorization: `Bearer ${t}` }, body: json({ new_api_key: 'sk-new-key-0002' }) })).status, 200);
    assert.match(stored('api_key_sha256'), /^hmac-sha256:/);
    assert.equal((await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer sk-new-key-0002' } })).status, 200);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    d.cleanup();
  }
});
