'use strict';
// A reload replaces the workers; the generations the old ones stream must
// still finish, even with a zero shutdown_timeout.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const g = require('./lib/gen');
const { stopPool } = require('./lib/fake');
const { sleep, childPids, pidAlive, waitFor } = require('./lib/daemon');

test('a reload lets running generations finish on the old workers', async () => {
  const ctx = await g.startGenPool({ workers: 1, poll: 100 });
  const { fake, d } = ctx;
  try {
    await g.addToken(ctx, { video_concurrency: 3 });
    // About 3 s of pending reads at 100 ms.
    const steps = Array.from({ length: 30 }, (_, i) => i / 30);
    await g.fakeCall(fake, 'POST', '/__fake/script', { keywords: { '#long': { video: { pending: [null, ...steps] } } } });
    d.writeConf({ server: { workers: '1', shutdown_timeout: '0' } });
    const old = childPids(d.pid);
    const running = g.chat(d, { model: 'sora-video-10s', stream: true, messages: g.user('a long one #long') });
    await sleep(500);
    process.kill(d.pid, 'SIGHUP');
    const r = await running;
    assert.equal(r.status, 200);
    const s = g.parseStream(r);
    assert.equal(s.error, undefined, JSON.stringify(s.error));
    assert.equal(s.content.type, 'video');
    assert.ok(s.rcs.some((rc) => rc.progress >= 50), 'progress went on after the reload');
    // The old worker leaves once its stream has ended.
    await waitFor(() => old.every((pid) => !pidAlive(pid)), { what: 'the old worker gone' });
  } finally {
    await stopPool(ctx);
  }
});
