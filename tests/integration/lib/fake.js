'use strict';
// The fake Sora upstream, in the test process, plus daemon settings that
// point the gateway at it.
const path = require('node:path');
const { start } = require(path.join(__dirname, '..', '..', 'fake-sora', 'server.js'));

async function startFake() {
  const f = await start({ port: 0 });
  const url = `http://127.0.0.1:${f.port}`;
  const call = async (method, p, body) => {
    const r = await fetch(url + p, {
      method, headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return text ? JSON.parse(text) : null;
  };
  return {
    port: f.port,
    url,
    close: () => f.close(),
    conf: {
      upstream: {
        base_url: `${url}/backend`,
        session_url: `${url}/api/auth/session`,
        oauth_url: `${url}/oauth/token`,
        timeout: '10',
      },
    },
    account: (opts = {}) => call('POST', '/__fake/accounts', opts),
    updateAccount: (opts) => call('POST', '/__fake/accounts/update', opts),
    arm: (opts) => call('POST', '/__fake/arm', opts),
    disarm: () => call('DELETE', '/__fake/arm'),
    journal: (q = '') => call('GET', `/__fake/journal${q}`),
    clearJournal: () => call('DELETE', '/__fake/journal'),
    reset: () => call('POST', '/__fake/reset', {}),
    mint: (opts) => call('POST', '/__fake/tokens', opts),
  };
}

// A daemon wired to a fresh fake upstream, with an admin session:
// { fake, d, H }. stopPool() checks the daemon stopped cleanly.
async function startPool(opts = {}) {
  const { Daemon, adminLogin } = require('./daemon');
  const fake = await startFake();
  const d = await new Daemon(Object.assign({ conf: fake.conf }, opts)).start();
  return { fake, d, H: await adminLogin(d) };
}

async function stopPool({ fake, d }) {
  const assert = require('node:assert/strict');
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
  await fake.close();
}

module.exports = { startFake, startPool, stopPool };
