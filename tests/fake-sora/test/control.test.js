'use strict';
/* The /__fake control API: arms, scripts, quota, config, journal, stats, state, reset. */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake, videoBody } = require('../lib/harness.js');

let h;
let a;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(async () => {
    await h.reset();
    a = await h.account();
});

const create = (body = videoBody(), token = a.access_token) => h.gen('/backend/nf/create', token, body);

async function drain(token = a.access_token) {
    for (let i = 0; i < 30 && (await h.get('/backend/nf/pending', token)).json.length; i++) { /* poll */ }
}

describe('POST /__fake/arm', () => {
    it('fails the next N matching requests, then lets them through', async () => {
        const arm = await h.ctl('POST', '/arm', {
            route: 'POST /backend/nf/create', status: 429, times: 2,
            body: { error: { message: 'busy', type: 'invalid_request_error', param: null, code: 'too_many_concurrent_tasks' } },
            headers: { 'retry-after': '7' },
        });
        assert.equal(typeof arm.id, 'number');
        const r1 = await create();
        assert.equal(r1.status, 429);
        assert.equal(r1.json.error.code, 'too_many_concurrent_tasks');
        assert.equal(r1.headers.get('retry-after'), '7');
        assert.equal((await h.ctl('GET', '/arm'))[0].fired, 1);
        assert.equal((await create()).status, 429);
        assert.deepEqual(await h.ctl('GET', '/arm'), [], 'spent arms disappear');
        assert.equal((await create()).status, 200);
        const entries = await h.journal('?route=POST%20/backend/nf/create');
        assert.deepEqual(entries.map((e) => [e.status, e.armed]), [[429, arm.id], [429, arm.id], [200, null]]);
    });

    it('skip lets the first matches through (e.g. 401 mid-poll) and times -1 lasts until disarmed', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /backend/nf/pending', preset: 'token_invalidated', skip: 2 });
        const statuses = [];
        for (let i = 0; i < 4; i++) {
            statuses.push((await h.get('/backend/nf/pending', a.access_token)).status);
        }
        assert.deepEqual(statuses, [200, 200, 401, 200]);
        await h.ctl('POST', '/arm', { route: 'GET /backend/me', status: 500, times: -1 });
        for (let i = 0; i < 3; i++) {
            assert.equal((await h.get('/backend/me', a.access_token)).status, 500);
        }
        assert.deepEqual(await h.ctl('DELETE', '/arm'), { cleared: 1 });
        assert.equal((await h.get('/backend/me', a.access_token)).status, 200);
    });

    it('matches by token, body text, query and path pattern', async () => {
        const b = await h.account();
        await h.ctl('POST', '/arm', { route: '/backend/nf/check', status: 500, match: { token: b.access_token } });
        assert.equal((await h.get('/backend/nf/check', a.access_token)).status, 200);
        assert.equal((await h.get('/backend/nf/check', b.access_token)).status, 500);
        await h.ctl('POST', '/arm', { route: 'POST /backend/nf/create', preset: 'content_policy', match: { body_contains: 'forbidden' } });
        assert.equal((await create(videoBody({ prompt: 'fine' }))).status, 200);
        assert.equal((await create(videoBody({ prompt: 'forbidden thing' }))).json.error.code, 'content_policy_violation');
        await h.ctl('POST', '/arm', { route: 'GET /backend/project_y/profile/drafts', status: 503, match: { query: { limit: 15 } } });
        assert.equal((await h.get('/backend/project_y/profile/drafts?limit=5', a.access_token)).status, 200);
        assert.equal((await h.get('/backend/project_y/profile/drafts?limit=15', a.access_token)).status, 503);
        await h.ctl('POST', '/arm', { route: 'GET /backend/project_y/cameos/in_progress/{id}', status: 500, times: 3 });
        const codes = [];
        for (let i = 0; i < 4; i++) {
            codes.push((await h.get(`/backend/project_y/cameos/in_progress/${'a'.repeat(32)}`, a.access_token)).status);
        }
        assert.deepEqual(codes, [500, 500, 500, 404]);
    });

    it('arms also work on the auth, parse and media hosts, before any auth check', async () => {
        await h.ctl('POST', '/arm', { arms: [
            { route: 'GET /api/auth/session', status: 200, body: 'not json at all' },
            { route: 'POST /oauth/token', preset: 'empty' },
            { route: 'GET /media/*', status: 404 },
            { route: 'POST /get-sora-link', status: 500 },
        ] });
        const s = await h.get('/api/auth/session');
        assert.deepEqual([s.status, s.text, s.headers.get('content-type')], [200, 'not json at all', 'text/plain; charset=utf-8']);
        assert.deepEqual((await h.req('POST', '/oauth/token', { body: {} })).json, {});
        assert.equal((await h.get('/media/vid/x.mp4')).status, 404);
        assert.equal((await h.req('POST', '/get-sora-link', { body: {} })).status, 500);
        await h.ctl('POST', '/arm', { route: 'GET /backend/me', status: 502 });
        assert.equal((await h.get('/backend/me')).status, 502, 'arms fire even without a token');
    });

    it('drop destroys the connection without an answer', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /backend/nf/pending', drop: true });
        await assert.rejects(h.get('/backend/nf/pending', a.access_token));
        assert.equal((await h.get('/backend/nf/pending', a.access_token)).status, 200);
        const [e] = await h.journal('?route=GET%20/backend/nf/pending&limit=2');
        assert.equal(e.status, 'dropped');
    });

    it('hang reads the request and never answers', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /backend/nf/pending', hang: true });
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), 300);
        await assert.rejects(fetch(`${h.url}/backend/nf/pending`, {
            headers: { authorization: `Bearer ${a.access_token}` }, signal: ac.signal }));
        clearTimeout(t);
        assert.equal((await h.get('/backend/nf/pending', a.access_token)).status, 200);
        const [e] = await h.journal('?route=GET%20/backend/nf/pending&limit=2');
        assert.equal(e.status, 'hung');
    });

    it('delay_ms delays an injected answer or a normal one', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /backend/me', delay_ms: 250 });
        let t0 = Date.now();
        const r = await h.get('/backend/me', a.access_token);
        assert.ok(Date.now() - t0 >= 240, 'delayed');
        assert.equal(r.json.email, a.email, 'no status: the real answer after the delay');
        await h.ctl('POST', '/arm', { route: 'GET /backend/me', delay_ms: 150, preset: 'heavy_load' });
        t0 = Date.now();
        const hl = await h.get('/backend/me', a.access_token);
        assert.ok(Date.now() - t0 >= 140);
        assert.equal(hl.status, 503);
        assert.equal(hl.json.error.message, "We're under heavy load, please try again later.");
    });

    it('slow_body_ms sends half the body, then the rest', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /media/*', slow_body_ms: 200 });
        const t0 = Date.now();
        const r = await h.get('/media/vid/x.mp4');
        assert.ok(Date.now() - t0 >= 190);
        assert.equal(r.status, 200);
        assert.equal(r.buf.toString('latin1', 4, 8), 'ftyp');
        assert.equal(r.buf.length, Number(r.headers.get('content-length')));
    });

    it('html and the cloudflare preset answer a challenge page with cf-mitigated', async () => {
        await h.ctl('POST', '/arm', { route: 'POST /backend/nf/create', html: true });
        const r = await create();
        assert.equal(r.status, 403);
        assert.equal(r.headers.get('cf-mitigated'), 'challenge');
        assert.match(r.headers.get('content-type'), /^text\/html/);
        assert.match(r.text, /Just a moment/);
        assert.match(r.text, /challenge-platform/);
        await h.ctl('POST', '/arm', { route: 'POST /backend/nf/create', preset: 'cloudflare', status: 429 });
        const r2 = await create();
        assert.deepEqual([r2.status, r2.headers.get('cf-mitigated')], [429, 'challenge']);
    });

    it('default bodies and presets use the OpenAI error envelope', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /backend/nf/check', status: 500 });
        const r = await h.get('/backend/nf/check', a.access_token);
        assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
        assert.equal(r.json.error.type, 'server_error');
        await h.ctl('POST', '/arm', { route: 'POST /backend/nf/create', preset: 'rate_limit_reached' });
        const q = await create();
        assert.equal(q.json.rate_limit_and_credit_balance.rate_limit_reached, true);
    });

    it('rejects bad arm specs', async () => {
        for (const spec of [{}, { route: 'x', preset: 'nope' }, { route: 'x', times: 0 }, { route: 'x', status: 42 }]) {
            const r = await h.req('POST', '/__fake/arm', { body: spec });
            assert.equal(r.status, 400, JSON.stringify(spec));
        }
        const one = await h.ctl('POST', '/arm', { route: 'GET /x', status: 500 });
        assert.deepEqual(await h.ctl('DELETE', `/arm/${one.id}`), { deleted: 1 });
    });
});

describe('POST /__fake/script', () => {
    it('adds prompt keywords with custom outcomes and removes them', async () => {
        await h.ctl('POST', '/script', { keywords: { '#mouse': { video: { outcome: 'violation', reason: 'Too much like a famous mouse.' } } } });
        const id = (await create(videoBody({ prompt: 'a #MOUSE dancing' }))).json.id;
        await drain();
        const d = (await h.get('/backend/project_y/profile/drafts', a.access_token)).json.items.find((x) => x.task_id === id);
        assert.equal(d.reason_str, 'Too much like a famous mouse.');
        assert.equal(d.kind, 'sora_content_violation');
        await h.ctl('POST', '/script', { keywords: { '#mouse': null, '#violate': null } });
        const s = await h.ctl('GET', '/script');
        assert.equal(s.keywords['#mouse'], undefined);
        assert.equal(s.keywords['#violate'], undefined);
        assert.ok(s.keywords['#fail']);
    });

    it('keywords can reject at submit time with a custom status', async () => {
        await h.ctl('POST', '/script', { keywords: { '#busy': { submit: { status: 503, body: { error: { message: "We're under heavy load, please try again later.", type: 'server_error', param: null, code: null } } } } } });
        const r = await create(videoBody({ prompt: 'x #busy' }));
        assert.equal(r.status, 503);
        assert.equal((await h.ctl('GET', `/state?token=${encodeURIComponent(a.access_token)}`)).tasks.length, 0);
    });

    it('changes the default script (polls per stage)', async () => {
        await h.ctl('POST', '/script', { video: { pending: [0.5], draft_delay_polls: 1 } });
        const id = (await create()).json.id;
        assert.equal((await h.get('/backend/nf/pending', a.access_token)).json[0].progress_pct, 0.5);
        assert.deepEqual((await h.get('/backend/nf/pending', a.access_token)).json, []);
        assert.equal((await h.get('/backend/project_y/profile/drafts', a.access_token)).json.items.length, 0);
        assert.equal((await h.get('/backend/project_y/profile/drafts', a.access_token)).json.items[0].task_id, id);
        await h.ctl('POST', '/script', { reset: true });
        assert.deepEqual((await h.ctl('GET', '/script')).scripts.video.pending, [null, 0.3, 0.7]);
    });

    it('queues one-shot scripts with next', async () => {
        await h.ctl('POST', '/script', { next: { video: { outcome: 'fail' }, image: [{ outcome: 'fail', error_message: 'boom' }] } });
        assert.deepEqual((await h.ctl('GET', '/script')).queued.video, 1);
        const first = (await create()).json.id;
        const second = (await create()).json.id;
        await drain();
        const items = (await h.get('/backend/project_y/profile/drafts', a.access_token)).json.items;
        assert.equal(items.find((d) => d.task_id === first).url, null);
        assert.ok(items.find((d) => d.task_id === second).url);
    });

    it('storyboard and remix can have scripts of their own', async () => {
        await h.ctl('POST', '/script', { remix: { outcome: 'violation' } });
        const r = await create({ kind: 'video', prompt: 'snow', remix_target_id: 's_aa11bb22cc33dd44ee55ff6677889900', model: 'sy_8', orientation: 'portrait', n_frames: 300, inpaint_items: [], cameo_ids: [], cameo_replacements: {} });
        const v = await create();
        await drain();
        const items = (await h.get('/backend/project_y/profile/drafts', a.access_token)).json.items;
        assert.equal(items.find((d) => d.task_id === r.json.id).kind, 'sora_content_violation');
        assert.equal(items.find((d) => d.task_id === v.json.id).kind, 'sora_draft');
    });

    it('validates scripts', async () => {
        for (const body of [{ video: { mode: 'hours' } }, { video: { outcome: 'explode' } }, { image: { progress: [2] } }, { next: { nothing: {} } }, { keywords: { '#x': { video: { pending: 'no' } } } }]) {
            assert.equal((await h.req('POST', '/__fake/script', { body })).status, 400, JSON.stringify(body));
        }
    });
});

describe('POST /__fake/quota and /__fake/config', () => {
    it('quota 0 makes nf/create answer 429; all:true updates every account', async () => {
        const b = await h.account();
        await h.ctl('POST', '/quota', { email: a.email, remaining: 0, resets_in: 3600 });
        const r = await create();
        assert.equal(r.status, 429);
        assert.ok(r.json.rate_limit_and_credit_balance.access_resets_in_seconds > 3500);
        assert.deepEqual(await h.ctl('POST', '/quota', { all: true, remaining: 3 }), { updated: 2 });
        assert.equal((await h.get('/backend/nf/check', b.access_token)).json.rate_limit_and_credit_balance.estimated_num_videos_remaining, 3);
    });

    it('config validates keys and values', async () => {
        assert.equal((await h.req('POST', '/__fake/config', { body: { nope: 1 } })).status, 400);
        assert.equal((await h.req('POST', '/__fake/config', { body: { sentinel: 'strict' } })).status, 400);
        const cfg = await h.ctl('POST', '/__fake/config'.replace('/__fake', ''), { max_concurrent_videos: 1 });
        assert.equal(cfg.max_concurrent_videos, 1);
        const b = await h.account();
        assert.equal((await create(videoBody(), b.access_token)).status, 200);
        assert.equal((await create(videoBody(), b.access_token)).status, 429);
    });
});

describe('journal, stats, state, reset', () => {
    it('records method, path, query, lower-cased headers and the parsed body', async () => {
        await h.gen('/backend/nf/create?foo=1&foo=2&bar=x%20y', a.access_token, videoBody(), { headers: { 'X-Custom-Header': 'Yes' } });
        const [e] = await h.journal('?route=POST%20/backend/nf/create');
        assert.equal(e.method, 'POST');
        assert.equal(e.path, '/backend/nf/create');
        assert.deepEqual(e.query, { foo: ['1', '2'], bar: 'x y' });
        assert.equal(e.raw_query, 'foo=1&foo=2&bar=x%20y');
        assert.equal(e.headers['x-custom-header'], 'Yes');
        assert.equal(e.headers['openai-sentinel-token'], 'qZ7rT2mW9xK4pL1');
        assert.equal(e.headers.authorization, `Bearer ${a.access_token}`);
        assert.deepEqual(e.body, videoBody());
        assert.equal(e.token, a.access_token);
        assert.equal(e.account, a.user_id);
        assert.equal(e.status, 200);
        assert.equal(e.route, 'POST /backend/nf/create');
        assert.equal(typeof e.duration_ms, 'number');
    });

    it('filters by since, method, path and token, and is cleared by DELETE', async () => {
        const b = await h.account();
        await h.get('/backend/me', a.access_token);
        const { last_seq: mark } = await h.ctl('GET', '/journal');
        await h.get('/backend/me', b.access_token);
        await h.get('/backend/nf/check', b.access_token);
        assert.equal((await h.journal(`?since=${mark}`)).length, 2);
        assert.equal((await h.journal(`?token=${encodeURIComponent(b.access_token)}`)).length, 2);
        assert.equal((await h.journal('?method=get&path=/nf/')).length, 1);
        assert.equal((await h.journal('?route=GET%20/backend/*')).length, 3);
        assert.equal((await h.journal('?limit=1'))[0].path, '/backend/nf/check');
        assert.deepEqual(await h.ctl('DELETE', '/journal'), { cleared: 3 });
        await h.get('/backend/me', a.access_token);
        const later = await h.ctl('GET', '/journal');
        assert.equal(later.entries.length, 1);
        assert.ok(later.entries[0].seq > mark + 2, 'sequence numbers keep growing');
    });

    it('is a bounded ring while the counters keep everything', async () => {
        await h.ctl('POST', '/config', { journal_size: 5 });
        for (let i = 0; i < 12; i++) {
            await h.get('/backend/nf/check', a.access_token);
        }
        const j = await h.ctl('GET', '/journal');
        assert.equal(j.entries.length, 5);
        assert.equal(j.evicted, 7);
        const stats = await h.ctl('GET', '/stats');
        assert.equal(stats.by_route['GET /backend/nf/check'].count, 12);
        assert.equal(stats.by_route['GET /backend/nf/check'].statuses['200'], 12);
        assert.equal(stats.journal.capacity, 5);
        assert.ok(stats.requests_total >= 12);
    });

    it('does not journal control calls; stats count unmatched routes too', async () => {
        await h.ctl('GET', '/stats');
        assert.equal((await h.journal()).length, 0);
        await h.get('/nowhere');
        const stats = await h.ctl('GET', '/stats');
        assert.equal(stats.by_route['GET <unmatched>'].count, 1);
        assert.equal(stats.by_status['404'], 1);
    });

    it('state dumps accounts, tasks and posts, optionally for one account', async () => {
        const b = await h.account();
        const id = (await create()).json.id;
        await create(videoBody(), b.access_token);
        const mine = await h.ctl('GET', `/state?token=${encodeURIComponent(a.access_token)}`);
        assert.equal(mine.accounts.length, 1);
        assert.deepEqual(mine.tasks.map((t) => t.id), [id]);
        assert.equal(mine.tasks[0].owner, a.user_id);
        assert.equal(mine.tasks[0].state, 'running');
        const all = await h.ctl('GET', '/state');
        assert.equal(all.tasks.length, 2);
        assert.ok(all.posts.length >= 6, 'seeded posts');
        const summary = await h.ctl('GET', '/state?summary=1');
        assert.equal(summary.running_videos, 2);
        const listed = await h.ctl('GET', '/accounts');
        assert.equal(listed.length, 2, 'seeded users are hidden unless include_seeded');
    });

    it('reset forgets everything', async () => {
        await create();
        await h.ctl('POST', '/arm', { route: '*', status: 500, times: -1 });
        await h.reset();
        assert.equal((await h.get('/backend/me', a.access_token)).status, 401, 'old tokens are gone and the arm too');
        const st = await h.ctl('GET', '/stats');
        assert.equal(st.live.tasks, 0);
        assert.equal(st.live.arms, 0);
        assert.equal(st.requests_total, 1);
    });

    it('exposes the same state to module users (srv.fake)', async () => {
        const id = (await create()).json.id;
        const task = h.fake.tasks.get(id);
        assert.equal(task.owner.email, a.email);
        assert.equal(task.state, 'running');
        const arm = h.fake.addArm({ route: 'GET /backend/me', preset: 'server_error' });
        assert.equal((await h.get('/backend/me', a.access_token)).status, 500);
        assert.equal(h.fake.journal({ route: 'GET /backend/me' })[0].armed, arm.id);
        const created = h.fake.createAccount({ email: 'module@example.test' });
        assert.equal((await h.get('/backend/me', created.access_tokens[0])).json.email, 'module@example.test');
    });

    it('answers unknown control routes 404 and bad JSON 400', async () => {
        assert.equal((await h.req('GET', '/__fake/nothing')).status, 404);
        assert.equal((await h.req('POST', '/__fake/arm', { raw: '{', headers: { 'content-type': 'application/json' } })).status, 400);
        assert.deepEqual((await h.ctl('GET', '/health')).ok, true);
    });
});
