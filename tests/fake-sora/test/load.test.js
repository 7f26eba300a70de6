'use strict';
/*
 * Concurrency sanity check: many accounts driving videos at once, all
 * requests in flight together.  The real benchmark (10,000 tasks over 3,400
 * accounts) lives elsewhere; this keeps the hot paths honest in seconds.
 */

const { it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startFake, videoBody, SENTINEL } = require('../lib/harness.js');

const ACCOUNTS = 200;
const PER_ACCOUNT = 3;

let h;
before(async () => { h = await startFake({ config: { journal_size: 1000 } }); });
after(() => h.close());

it(`${ACCOUNTS} accounts x ${PER_ACCOUNT} concurrent videos finish with one draft each`, async () => {
    const accounts = await h.ctl('POST', '/accounts', { count: ACCOUNTS });
    const t0 = Date.now();
    const created = await Promise.all(accounts.flatMap((a) => Array.from({ length: PER_ACCOUNT }, (_, i) =>
        h.gen('/backend/nf/create', a.access_token, videoBody({ prompt: `clip ${i}` })))));
    assert.ok(created.every((r) => r.status === 200), 'no 429: exactly 3 per account');
    const over = await h.gen('/backend/nf/create', accounts[0].access_token, videoBody());
    assert.equal(over.status, 429, 'a 4th running task is refused');

    // Poll every account's pending list concurrently until all are empty.
    let rounds = 0;
    for (;;) {
        rounds++;
        const lists = await Promise.all(accounts.map((a) => h.get('/backend/nf/pending/v2', a.access_token)));
        if (lists.every((r) => Array.isArray(r.json) && r.json.length === 0)) {
            break;
        }
        assert.ok(rounds < 10, 'default script: three pending polls');
    }
    assert.equal(rounds, 4);
    const drafts = await Promise.all(accounts.map((a) => h.get('/backend/project_y/profile/drafts?limit=15', a.access_token)));
    assert.ok(drafts.every((r) => r.json.items.length === PER_ACCOUNT && r.json.items.every((d) => d.downloadable_url)));
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 15000, `took ${elapsed} ms`);

    const stats = await h.ctl('GET', '/stats');
    assert.equal(stats.counters.tasks_created.video, ACCOUNTS * PER_ACCOUNT);
    assert.equal(stats.live.running_videos, 0);
    assert.equal(stats.journal.size, 1000, 'journal stays capped');
    assert.ok(stats.journal.evicted > 0);
    assert.equal(stats.by_route['POST /backend/nf/create'].count, ACCOUNTS * PER_ACCOUNT + 1);
});

it('answers many concurrent raw requests on fresh connections', async () => {
    const [a] = await h.ctl('POST', '/accounts', { count: 1 });
    const results = await Promise.all(Array.from({ length: 500 }, () =>
        fetch(`${h.url}/backend/nf/check`, { headers: { authorization: `Bearer ${a.access_token}`, connection: 'close', ...SENTINEL } })
            .then((r) => r.status)));
    assert.ok(results.every((s) => s === 200));
});
