'use strict';
/* Token onboarding calls (protocol doc 5.1): me, subscriptions, invite/mine + bootstrap, invite/accept, nf/check, usernames. */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake } = require('../lib/harness.js');

let h;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(() => h.reset());

describe('GET /backend/me', () => {
    it('returns the X1 shape and sees the Origin/Referer headers in the journal', async () => {
        const a = await h.account({ email: 'one@example.test', name: 'Test User', username: 'tester.one' });
        const r = await h.get('/backend/me', a.access_token, {
            headers: { accept: 'application/json', origin: 'https://sora.chatgpt.com', referer: 'https://sora.chatgpt.com/' },
        });
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { id: a.user_id, email: 'one@example.test', name: 'Test User', username: 'tester.one', profile_picture_url: null });
        assert.match(a.user_id, /^user-[A-Za-z0-9]{24}$/);
        const [e] = await h.journal('?route=GET%20/backend/me');
        assert.equal(e.headers.origin, 'https://sora.chatgpt.com');
        assert.equal(e.account, a.user_id);
    });

    it('reports username null for accounts created without one', async () => {
        const a = await h.account({ username: null });
        assert.equal((await h.get('/backend/me', a.access_token)).json.username, null);
    });
});

describe('GET /backend/billing/subscriptions', () => {
    it('returns the plan (X2)', async () => {
        const a = await h.account({ plan: 'chatgpt_pro' });
        const r = await h.get('/backend/billing/subscriptions', a.access_token);
        assert.equal(r.json.object, 'list');
        assert.equal(r.json.data[0].plan.id, 'chatgpt_pro');
        assert.equal(r.json.data[0].plan.title, 'ChatGPT Pro');
        assert.match(r.json.data[0].end_ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    });

    it('returns empty data for a free account and token_expired when asked to', async () => {
        const free = await h.account({ plan: 'free' });
        assert.deepEqual((await h.get('/backend/billing/subscriptions', free.access_token)).json.data, []);
        const exp = await h.account({ billing_token_expired: true });
        const r = await h.get('/backend/billing/subscriptions', exp.access_token);
        assert.equal(r.status, 401);
        assert.equal(r.json.error.code, 'token_expired');
        assert.equal((await h.get('/backend/me', exp.access_token)).status, 200, 'only billing says expired');
    });
});

describe('invite/mine and m/bootstrap', () => {
    it('returns the invite code and counts for an activated account (X3)', async () => {
        const a = await h.account({ invite_code: 'FAKE7Q', redeemed_count: 1, total_count: 4 });
        const r = await h.get('/backend/project_y/invite/mine', a.access_token);
        assert.deepEqual(r.json, { invite_code: 'FAKE7Q', redeemed_count: 1, total_count: 4 });
    });

    it('answers 401 Unauthorized until bootstrap activates a needs_bootstrap account', async () => {
        const a = await h.account({ needs_bootstrap: true });
        const first = await h.get('/backend/project_y/invite/mine', a.access_token);
        assert.equal(first.status, 401);
        assert.match(first.json.error.message, /Unauthorized/);
        const boot = await h.get('/backend/m/bootstrap', a.access_token);
        assert.equal(boot.status, 200);
        assert.deepEqual(boot.json, { ok: true });
        assert.equal((await h.get('/backend/project_y/invite/mine', a.access_token)).status, 200);
        const st = await h.ctl('GET', `/state?email=${a.email}`);
        assert.equal(st.accounts[0].bootstrap_calls, 1);
    });

    it('stays 401 after bootstrap for a non-activated account without bootstrap_activates', async () => {
        const a = await h.account({ sora2_activated: false });
        await h.get('/backend/m/bootstrap', a.access_token);
        assert.equal((await h.get('/backend/project_y/invite/mine', a.access_token)).status, 401);
    });

    it('answers 403 unsupported_country_code with the country in param', async () => {
        const a = await h.account({ country_blocked: 'RU' });
        const r = await h.get('/backend/project_y/invite/mine', a.access_token);
        assert.equal(r.status, 403);
        assert.equal(r.json.error.code, 'unsupported_country_code');
        assert.equal(r.json.error.param, 'RU');
    });
});

describe('POST invite/accept', () => {
    it('activates with another account\'s code and counts the redemption', async () => {
        const inviter = await h.account({ invite_code: 'INVIT1', total_count: 2 });
        const a = await h.account({ sora2_activated: false });
        const r = await h.post('/backend/project_y/invite/accept', null, { invite_code: 'invit1' }, {
            headers: { authorization: `Bearer ${a.access_token}`, cookie: 'oai-did=1b2c3d4e-0000-4000-8000-000000000000' },
        });
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { success: true, already_accepted: false });
        assert.equal((await h.get('/backend/project_y/invite/mine', a.access_token)).status, 200);
        assert.equal((await h.get('/backend/project_y/invite/mine', inviter.access_token)).json.redeemed_count, 1);
        const again = await h.post('/backend/project_y/invite/accept', a.access_token, { invite_code: 'INVIT1' });
        assert.deepEqual(again.json, { success: true, already_accepted: true });
    });

    it('accepts the configured universal code and rejects unknown or exhausted ones', async () => {
        const a = await h.account({ sora2_activated: false });
        const bad = await h.post('/backend/project_y/invite/accept', a.access_token, { invite_code: 'NOPE00' });
        assert.equal(bad.status, 400);
        assert.equal(bad.json.error.code, 'invalid_invite_code');
        await h.account({ invite_code: 'FULL01', redeemed_count: 4, total_count: 4 });
        const full = await h.post('/backend/project_y/invite/accept', a.access_token, { invite_code: 'FULL01' });
        assert.equal(full.json.error.code, 'invite_code_exhausted');
        const ok = await h.post('/backend/project_y/invite/accept', a.access_token, { invite_code: 'FAKEINVITE' });
        assert.equal(ok.json.success, true);
    });
});

describe('GET /backend/nf/check', () => {
    it('reports the quota counters (X6)', async () => {
        const a = await h.account({ remaining: 27, resets_in: 46833 });
        const r = await h.get('/backend/nf/check', a.access_token);
        const q = r.json.rate_limit_and_credit_balance;
        assert.equal(q.estimated_num_videos_remaining, 27);
        assert.equal(q.rate_limit_reached, false);
        assert.ok(q.access_resets_in_seconds > 46820 && q.access_resets_in_seconds <= 46833);
    });

    it('shows remaining 0 with the reset time after POST /__fake/quota', async () => {
        const a = await h.account();
        await h.ctl('POST', '/quota', { access_token: a.access_token, remaining: 0, resets_in: 120 });
        const q = (await h.get('/backend/nf/check', a.access_token)).json.rate_limit_and_credit_balance;
        assert.equal(q.estimated_num_videos_remaining, 0);
        assert.equal(q.rate_limit_reached, true);
        assert.ok(q.access_resets_in_seconds > 110 && q.access_resets_in_seconds <= 120);
    });
});

describe('username check and set', () => {
    it('reports availability and sets a free name', async () => {
        const a = await h.account({ username: null });
        await h.account({ username: 'taken.name' });
        const taken = await h.post('/backend/project_y/profile/username/check', a.access_token, { username: 'taken.name' });
        assert.deepEqual(taken.json, { available: false });
        const free = await h.post('/backend/project_y/profile/username/check', a.access_token, { username: 'jane.doe482' });
        assert.deepEqual(free.json, { available: true });
        const set = await h.post('/backend/project_y/profile/username/set', a.access_token, { username: 'jane.doe482' });
        assert.deepEqual(set.json, { user_id: a.user_id, username: 'jane.doe482' });
        assert.equal((await h.get('/backend/me', a.access_token)).json.username, 'jane.doe482');
        const nowTaken = await h.post('/backend/project_y/profile/username/check', a.access_token, { username: 'jane.doe482' });
        assert.equal(nowTaken.json.available, false);
    });

    it('rejects a taken or malformed name on set with 400', async () => {
        const a = await h.account({ username: null });
        await h.account({ username: 'someone' });
        const t = await h.post('/backend/project_y/profile/username/set', a.access_token, { username: 'someone' });
        assert.equal(t.status, 400);
        assert.equal(t.json.error.code, 'username_taken');
        const m = await h.post('/backend/project_y/profile/username/set', a.access_token, { username: 'Bad Name!' });
        assert.equal(m.json.error.code, 'invalid_username');
    });

    it('can report the first N candidates as taken, and reserve names', async () => {
        const a = await h.account({ username: null });
        await h.ctl('POST', '/config', { username_check_taken_first: 2, taken_usernames: ['reserved1'] });
        const results = [];
        for (let i = 0; i < 3; i++) {
            results.push((await h.post('/backend/project_y/profile/username/check', a.access_token, { username: `cand${i}x` })).json.available);
        }
        assert.deepEqual(results, [false, false, true]);
        assert.equal((await h.post('/backend/project_y/profile/username/check', a.access_token, { username: 'reserved1' })).json.available, false);
    });
});

describe('bulk accounts', () => {
    it('creates 1000 accounts in one call with unique tokens', async () => {
        const t0 = Date.now();
        const list = await h.ctl('POST', '/accounts', { count: 1000, remaining: 5 });
        assert.equal(list.length, 1000);
        assert.equal(new Set(list.map((a) => a.access_token)).size, 1000);
        assert.equal(new Set(list.map((a) => a.email)).size, 1000);
        assert.ok(Date.now() - t0 < 5000, 'bulk creation stays cheap');
        const r = await h.get('/backend/nf/check', list[999].access_token);
        assert.equal(r.json.rate_limit_and_credit_balance.estimated_num_videos_remaining, 5);
    });

    it('skips a default username that was taken explicitly, and refuses duplicate invite codes', async () => {
        await h.account({ username: 'tester2' });
        const second = await h.account();
        assert.equal(second.username, 'tester2_2');
        await h.account({ invite_code: 'DUP001' });
        const dup = await h.req('POST', '/__fake/accounts', { body: { invite_code: 'DUP001' } });
        assert.equal(dup.status, 400);
        const bulk = await h.ctl('POST', '/accounts', { count: 3, invite_code: 'BULK{n}' });
        assert.deepEqual(bulk.map((x) => x.invite_code), ['BULK4', 'BULK5', 'BULK6']);
    });

    it('refuses fixed unique fields when count > 1', async () => {
        const r = await h.req('POST', '/__fake/accounts', { body: { count: 2, email: 'same@example.test' } });
        assert.equal(r.status, 400);
        assert.match(r.json.error, /\{n\}/);
    });
});
