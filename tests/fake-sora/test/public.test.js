'use strict';
/* Public data (E28-E32), enhance_prompt (L2) and sentinel/req (L1). */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake } = require('../lib/harness.js');

let h;
let a;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(async () => {
    await h.reset();
    a = await h.account({ username: 'tester.one' });
});

describe('GET /backend/project_y/profile/username/{u}', () => {
    it('returns the X28 profile of a seeded user', async () => {
        const r = await h.get('/backend/project_y/profile/username/happyremixer', a.access_token);
        assert.equal(r.status, 200);
        const p = r.json;
        assert.equal(p.user_id, 'user-4qLuo8ATzeEsuvCpOUAfAZY0');
        assert.equal(p.display_name, 'Happy Remixer');
        assert.equal(p.permalink, 'https://sora.chatgpt.com/profile/happyremixer');
        for (const k of ['follower_count', 'following_count', 'post_count', 'likes_received_count', 'remix_count', 'cameo_count']) {
            assert.equal(typeof p[k], 'number', k);
        }
        assert.equal(p.can_cameo, true);
        assert.match(p.profile_picture_url, /^http:\/\/127\.0\.0\.1:\d+\/media\/pfp\//);
    });

    it('journals the decoded path value as params, the raw path as sent', async () => {
        const name = 'a&limit=9 #%é';
        const r = await h.get(`/backend/project_y/profile/username/${encodeURIComponent(name)}`, a.access_token);
        assert.equal(r.status, 404);
        const [e] = await h.journal('?route=GET%20/backend/project_y/profile/username/{username}&limit=1');
        assert.deepEqual(e.params, { username: name });
        assert.equal(e.path, `/backend/project_y/profile/username/${encodeURIComponent(name)}`);
    });

    it('404s an unknown user with "User not found"', async () => {
        const r = await h.get('/backend/project_y/profile/username/nobody', a.access_token);
        assert.equal(r.status, 404);
        assert.equal(r.json.error.message, 'User not found');
    });
});

describe('profile feeds', () => {
    it('profile_feed/{user_id} lists posts newest first with cursor pagination (X29)', async () => {
        const uid = 'user-4qLuo8ATzeEsuvCpOUAfAZY0';
        const p1 = (await h.get(`/backend/project_y/profile_feed/${uid}?limit=1&cut=nf2`, a.access_token)).json;
        assert.equal(p1.items.length, 1);
        assert.equal(p1.items[0].post.id, 's_aa11bb22cc33dd44ee55ff6677889900');
        assert.equal(p1.items[0].profile.username, 'happyremixer');
        assert.equal(p1.cursor, 'eyJvZmZzZXQiOjF9', 'cursor is base64 {"offset":1}, as in the protocol example');
        const att = p1.items[0].post.attachments[0];
        assert.equal(att.kind, 'sora');
        assert.equal(att.n_frames, 300);
        assert.match(att.encodings.thumbnail.path, /\.jpg$/);
        const p2 = (await h.get(`/backend/project_y/profile_feed/${uid}?cursor=${p1.cursor}&limit=1&cut=nf2`, a.access_token)).json;
        assert.notEqual(p2.items[0].post.id, p1.items[0].post.id);
        assert.equal(p2.cursor, null);
        const [e] = await h.journal(`?path=${uid}&since=0&limit=1`);
        assert.equal(e.raw_query, `cursor=${p1.cursor}&limit=1&cut=nf2`, 'raw query order is kept for assertions');
    });

    it('profile_feed/me is the caller; an unknown user 404s', async () => {
        await h.ctl('POST', '/posts', { email: a.email, text: 'my post' });
        const me = (await h.get('/backend/project_y/profile_feed/me?limit=5&cut=nf2', a.access_token)).json;
        assert.equal(me.items[0].post.text, 'my post');
        assert.equal((await h.get('/backend/project_y/profile_feed/user-nobody?limit=5', a.access_token)).status, 404);
    });
});

describe('GET /backend/project_y/profile/search_mentions', () => {
    it('matches by username prefix; intent=cameo keeps only can_cameo profiles (X31)', async () => {
        const users = (await h.get('/backend/project_y/profile/search_mentions?username=s&intent=users&limit=10', a.access_token)).json.items;
        assert.deepEqual(users.map((i) => i.profile.username), ['skaterdog', 'sunsetpainter']);
        const cameo = (await h.get('/backend/project_y/profile/search_mentions?username=s&intent=cameo&limit=10', a.access_token)).json.items;
        assert.deepEqual(cameo.map((i) => i.profile.username), ['skaterdog']);
        const ch = (await h.get('/backend/project_y/profile/search_mentions?username=fluffy&intent=cameo&limit=10', a.access_token)).json.items[0];
        assert.equal(ch.token, '<@ch_693b0192af888191ac8b3af188acebce>');
        assert.equal(ch.profile.can_cameo, true);
        assert.deepEqual(Object.keys(ch.profile.owner_profile).sort(), ['display_name', 'user_id', 'username']);
        assert.equal((await h.get('/backend/project_y/profile/search_mentions?username=s&intent=bogus', a.access_token)).status, 400);
    });

    it('honours limit', async () => {
        const r = await h.get('/backend/project_y/profile/search_mentions?username=&intent=users&limit=2', a.access_token);
        assert.equal(r.json.items.length, 2);
    });
});

describe('GET /backend/project_y/feed', () => {
    it('cut switches the ordering and the cursor pages through (X32)', async () => {
        const ids = async (cut) => (await h.get(`/backend/project_y/feed?limit=6&cut=${cut}`, a.access_token)).json.items.map((i) => i.post.id);
        const latest = await ids('nf2_latest');
        const top = await ids('nf2_top');
        const foryou = await ids('nf2');
        assert.equal(latest.length, 6);
        assert.equal(latest[0], 's_aa11bb22cc33dd44ee55ff6677889900', 'newest seeded post first');
        assert.notDeepEqual(latest, top);
        assert.notDeepEqual(top, foryou);
        const page1 = (await h.get('/backend/project_y/feed?limit=4&cut=nf2_latest', a.access_token)).json;
        const page2 = (await h.get(`/backend/project_y/feed?cursor=${page1.cursor}&limit=4&cut=nf2_latest`, a.access_token)).json;
        assert.deepEqual([...page1.items, ...page2.items].map((i) => i.post.id), latest);
        assert.equal(page2.cursor, null);
        const item = page1.items[0];
        for (const k of ['id', 'text', 'permalink', 'preview_image_url', 'posted_at', 'like_count', 'view_count', 'remix_count', 'attachments']) {
            assert.ok(k in item.post, k);
        }
        for (const k of ['user_id', 'username', 'display_name', 'profile_picture_url', 'permalink', 'verified', 'follower_count']) {
            assert.ok(k in item.profile, k);
        }
    });

    it('clamps limit to max_page_size', async () => {
        await h.ctl('POST', '/config', { max_page_size: 2 });
        assert.equal((await h.get('/backend/project_y/feed?limit=50&cut=nf2', a.access_token)).json.items.length, 2);
    });
});

describe('later-client extras', () => {
    it('POST /backend/editor/enhance_prompt returns enhanced_prompt (XL2)', async () => {
        const r = await h.post('/backend/editor/enhance_prompt', a.access_token, { prompt: 'a cat', expansion_level: 'long', duration_s: 10 });
        assert.equal(r.status, 200);
        assert.ok(r.json.enhanced_prompt.startsWith('a cat, '));
        assert.equal((await h.post('/backend/editor/enhance_prompt', a.access_token, { prompt: 'a cat', expansion_level: 'huge' })).status, 400);
    });

    it('POST /backend-api/sentinel/req returns a challenge (XL1), also for a text/plain body', async () => {
        const body = JSON.stringify({ p: 'gAAAAACxyz', flow: 'sora_2_create_task', id: '0b6c1c8e-0000-4000-8000-000000000000' });
        const r = await h.req('POST', '/backend-api/sentinel/req', { raw: body, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
        assert.equal(r.status, 200);
        assert.match(r.json.token, /^gAAAAAB/);
        assert.equal(r.json.proofofwork.required, false);
        assert.equal(r.json.proofofwork.difficulty, '0fffff');
        assert.equal(r.json.turnstile.required, false);
        await h.ctl('POST', '/config', { sentinel_pow_required: true, sentinel_pow_difficulty: 'ff' });
        const hard = await h.req('POST', '/backend-api/sentinel/req', { body: JSON.parse(body) });
        assert.deepEqual([hard.json.proofofwork.required, hard.json.proofofwork.difficulty], [true, 'ff']);
        assert.equal((await h.req('POST', '/backend-api/sentinel/req', { body: {} })).status, 400);
    });
});

describe('routing', () => {
    it('answers unknown paths 404 and wrong methods 405, always as JSON', async () => {
        const r = await h.get('/backend/nope', a.access_token);
        assert.equal(r.status, 404);
        assert.equal(r.json.error.code, 'not_found');
        const m = await h.req('PUT', '/backend/nf/create', { token: a.access_token, body: {} });
        assert.equal(m.status, 405);
        assert.match(m.headers.get('content-type'), /^application\/json/);
    });

    it('answers invalid JSON with 400 invalid_json', async () => {
        const r = await h.req('POST', '/backend/nf/create', {
            token: a.access_token, raw: '{not json', headers: { 'content-type': 'application/json', 'openai-sentinel-token': 'abcdefghij' },
        });
        assert.equal(r.status, 400);
        assert.equal(r.json.error.code, 'invalid_json');
    });

    it('tolerates Content-Type: application/json on GETs without a body', async () => {
        const r = await h.get('/backend/nf/pending', a.access_token, { headers: { 'content-type': 'application/json' } });
        assert.equal(r.status, 200);
    });
});
