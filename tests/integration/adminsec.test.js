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
