'use strict';
/* Video tasks: nf/create (+storyboard, remix), pending, drafts, keyword scripts, concurrency, quota, sentinel. */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake, videoBody, fileForm, sleep } = require('../lib/harness.js');
const { MEDIA } = require('../server.js');

const SEEDED_POST = 's_aa11bb22cc33dd44ee55ff6677889900';

let h;
let a;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(async () => {
    await h.reset();
    a = await h.account({ max_concurrent: 20 });
});

const create = (body = videoBody(), token = a.access_token) => h.gen('/backend/nf/create', token, body);
const pending = (token = a.access_token, v2 = false) => h.get(`/backend/nf/pending${v2 ? '/v2' : ''}`, token);
const drafts = (token = a.access_token, q = '?limit=15') => h.get(`/backend/project_y/profile/drafts${q}`, token);
const draftOf = async (taskId, token) => (await drafts(token)).json.items.find((d) => d.task_id === taskId);

/* Read pending until the task is gone; returns the progress values seen. */
async function drainPending(taskId, token = a.access_token, max = 40) {
    const seen = [];
    for (let i = 0; i < max; i++) {
        const el = (await pending(token)).json.find((t) => t.id === taskId);
        if (!el) {
            return seen;
        }
        seen.push(el.progress_pct);
    }
    throw new Error('task never left pending');
}

describe('POST /backend/nf/create', () => {
    it('returns the task id and the quota after the decrement (X12)', async () => {
        const r = await create();
        assert.equal(r.status, 200);
        assert.match(r.json.id, /^task_[0-9a-z]{26}$/);
        assert.equal(r.json.status, 'queued');
        assert.equal(r.json.prompt, 'a cat surfing');
        assert.equal(r.json.rate_limit_and_credit_balance.estimated_num_videos_remaining, 29);
        const check = await h.get('/backend/nf/check', a.access_token);
        assert.equal(check.json.rate_limit_and_credit_balance.estimated_num_videos_remaining, 29);
    });

    it('validates the body fields', async () => {
        const cases = [
            [{ kind: 'image' }, 'invalid_kind'],
            [{ prompt: '' }, 'invalid_prompt'],
            [{ orientation: 'square' }, 'invalid_orientation'],
            [{ n_frames: 301 }, 'invalid_n_frames'],
            [{ model: 'sy_7' }, 'invalid_model'],
            [{ size: 'huge' }, 'invalid_size'],
            [{ style_id: 'Anime' }, 'invalid_style'],
            [{ inpaint_items: [{ kind: 'upload', upload_id: 'media_nope' }] }, 'invalid_upload'],
            [{ inpaint_items: [{ type: 'image', upload_media_id: 'x' }] }, 'invalid_inpaint_items'],
            [{ remix_target_id: 's_XYZ' }, 'invalid_remix_target'],
            [{ cameo_ids: ['nope'] }, 'invalid_cameo_ids'],
        ];
        for (const [over, code] of cases) {
            const r = await create(videoBody(over));
            assert.equal(r.status, 400, JSON.stringify(over));
            assert.equal(r.json.error.code, code, JSON.stringify(over));
        }
        const ok = await create(videoBody({ style_id: 'anime', n_frames: 450, orientation: 'portrait', model: 'sy_8_20251208' }));
        assert.equal(ok.status, 200);
    });

    it('accepts the later client\'s explicit nulls', async () => {
        const r = await create(videoBody({
            model: 'sy_8_20251208', n_frames: 750, title: null, remix_target_id: null, metadata: null, cameo_ids: null,
            cameo_replacements: null, audio_caption: null, audio_transcript: null, video_caption: null, storyboard_id: null,
        }));
        assert.equal(r.status, 200);
    });

    it('image-to-video refers to an upload of the same account', async () => {
        const up = await h.req('POST', '/backend/uploads', {
            token: a.access_token, form: fileForm({ file_name: 'image.png' }, { data: MEDIA.png, type: 'image/png', filename: 'image.png' }),
        });
        const r = await create(videoBody({ inpaint_items: [{ kind: 'upload', upload_id: up.json.id }] }));
        assert.equal(r.status, 200);
        const t = await h.ctl('GET', `/tasks/${r.json.id}`);
        assert.deepEqual(t.inpaint_items, [{ kind: 'upload', upload_id: up.json.id }]);
        assert.equal(t.kind, 'video');
    });
});

describe('video lifecycle (counted in polls)', () => {
    it('pending shows null -> 0.3 -> 0.7, then the task leaves pending and its draft appears', async () => {
        const id = (await create()).json.id;
        assert.equal(await draftOf(id), undefined, 'no draft while running');
        const first = (await pending()).json;
        assert.ok(Array.isArray(first), 'pending is a bare array');
        assert.equal(first[0].id, id);
        assert.equal(first[0].progress_pct, null);
        assert.equal(first[0].status, 'queued');
        assert.equal(first[0].task_type, 'video_gen');
        const rest = await drainPending(id);
        assert.deepEqual(rest, [0.3, 0.7]);
        const d = await draftOf(id);
        assert.match(d.id, /^gen_[0-9a-z]{26}$/);
        assert.equal(d.kind, 'sora_draft');
        assert.equal(d.reason_str, null);
        assert.equal(d.url, `${h.url}/media/vid/${d.id}_wm.mp4`);
        assert.equal(d.downloadable_url, `${h.url}/media/vid/${d.id}.mp4`);
        assert.deepEqual([d.width, d.height, d.n_frames], [1280, 704, 300]);
        const mp4 = await h.req('GET', `/media/vid/${d.id}.mp4`);
        assert.equal(mp4.buf.toString('latin1', 4, 8), 'ftyp');
    });

    it('pending/v2 has the same shape and shares the poll counter', async () => {
        const id = (await create()).json.id;
        assert.equal((await pending(a.access_token, true)).json[0].progress_pct, null);
        assert.equal((await pending(a.access_token, false)).json[0].progress_pct, 0.3);
        assert.equal((await pending(a.access_token, true)).json[0].progress_pct, 0.7);
        assert.deepEqual((await pending(a.access_token, true)).json, []);
        assert.ok(await draftOf(id));
    });

    it('keeps accounts apart', async () => {
        const b = await h.account();
        const id = (await create()).json.id;
        assert.deepEqual((await pending(b.access_token)).json, []);
        await drainPending(id);
        assert.deepEqual((await drafts(b.access_token)).json.items, []);
    });

    it('#violate gives a sora_content_violation draft with reason_str and no URL', async () => {
        const id = (await create(videoBody({ prompt: 'famous mouse #violate' }))).json.id;
        await drainPending(id);
        const d = await draftOf(id);
        assert.equal(d.kind, 'sora_content_violation');
        assert.match(d.reason_str, /guardrails/);
        assert.match(d.markdown_reason_str, /\*\*guardrails\*\*/);
        assert.equal(d.url, null);
        assert.equal(d.downloadable_url, null);
    });

    it('#fail gives a draft without any URL', async () => {
        const id = (await create(videoBody({ prompt: 'x #FAIL' }))).json.id;
        await drainPending(id);
        const d = await draftOf(id);
        assert.deepEqual([d.kind, d.url, d.downloadable_url, d.reason_str], ['sora_draft', null, null, null]);
    });

    it('#stall never leaves pending; #slow stalls at 0.1 and then finishes', async () => {
        const stall = (await create(videoBody({ prompt: '#stall' }))).json.id;
        const slow = (await create(videoBody({ prompt: '#slow' }))).json.id;
        const slowSeen = await drainPending(slow);
        assert.deepEqual(slowSeen, [null, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.9]);
        const el = (await pending()).json.find((t) => t.id === stall);
        assert.equal(el.progress_pct, 0.7, 'a stalled task keeps its last progress');
        const st = await h.ctl('GET', `/state?token=${encodeURIComponent(a.access_token)}`);
        assert.deepEqual(st.accounts[0].running_tasks, [stall]);
    });

    it('#latedraft hides the draft for two drafts reads; #nourl shows url null twice', async () => {
        const late = (await create(videoBody({ prompt: '#latedraft' }))).json.id;
        const nourl = (await create(videoBody({ prompt: '#nourl' }))).json.id;
        await drainPending(late);
        await drainPending(nourl);
        const r1 = (await drafts()).json.items;
        assert.equal(r1.find((d) => d.task_id === late), undefined);
        assert.equal(r1.find((d) => d.task_id === nourl).url, null);
        const r2 = (await drafts()).json.items;
        assert.equal(r2.find((d) => d.task_id === late), undefined);
        assert.equal(r2.find((d) => d.task_id === nourl).url, null);
        const r3 = (await drafts()).json.items;
        assert.ok(r3.find((d) => d.task_id === late).url);
        assert.ok(r3.find((d) => d.task_id === nourl).downloadable_url);
    });

    it('#vanish leaves pending but never shows a draft', async () => {
        const id = (await create(videoBody({ prompt: '#vanish' }))).json.id;
        await drainPending(id);
        for (let i = 0; i < 3; i++) {
            assert.equal(await draftOf(id), undefined);
        }
        assert.equal((await h.ctl('GET', `/tasks/${id}`)).state, 'vanished');
    });

    it('a seconds-mode script runs on the clock', async () => {
        await h.ctl('POST', '/script', { video: { mode: 'seconds', duration_s: 0.4 } });
        const id = (await create()).json.id;
        const el = (await pending()).json[0];
        assert.equal(el.id, id);
        await sleep(450);
        assert.ok(await draftOf(id), 'drafts settles tasks whose time is up even without a pending read');
        assert.deepEqual((await pending()).json, []);
    });

    it('drafts are newest first and paginate with limit and cursor', async () => {
        const ids = [];
        for (let i = 0; i < 5; i++) {
            ids.push((await create(videoBody({ prompt: `clip ${i}` }))).json.id);
            await drainPending(ids[i]);
        }
        const p1 = (await drafts(a.access_token, '?limit=2')).json;
        assert.deepEqual(p1.items.map((d) => d.task_id), [ids[4], ids[3]]);
        assert.ok(p1.cursor);
        const p2 = (await drafts(a.access_token, `?limit=2&cursor=${encodeURIComponent(p1.cursor)}`)).json;
        assert.deepEqual(p2.items.map((d) => d.task_id), [ids[2], ids[1]]);
        const p3 = (await drafts(a.access_token, `?limit=2&cursor=${encodeURIComponent(p2.cursor)}`)).json;
        assert.deepEqual(p3.items.map((d) => d.task_id), [ids[0]]);
        assert.equal(p3.cursor, null);
        assert.equal((await drafts(a.access_token, '?cursor=%%%')).status, 400);
        assert.equal((await drafts(a.access_token, '?limit=0')).status, 400);
    });
});

describe('concurrency and quota', () => {
    it('answers 429 too_many_concurrent_tasks with more than 3 running videos', async () => {
        const b = await h.account();
        const ids = [];
        for (let i = 0; i < 3; i++) {
            ids.push((await create(videoBody(), b.access_token)).json.id);
        }
        const r = await create(videoBody(), b.access_token);
        assert.equal(r.status, 429);
        assert.equal(r.json.error.code, 'too_many_concurrent_tasks');
        assert.equal(r.json.error.details.num_tasks, 3);
        assert.equal((await h.get('/backend/nf/check', b.access_token)).json.rate_limit_and_credit_balance.estimated_num_videos_remaining, 27, 'a refused task costs nothing');
        await drainPending(ids[0], b.access_token);
        assert.equal((await create(videoBody(), b.access_token)).status, 200);
    });

    it('answers 429 with rate_limit_reached when the quota is used up, and refills after the reset', async () => {
        const b = await h.account({ remaining: 1 });
        assert.equal((await create(videoBody(), b.access_token)).status, 200);
        const r = await create(videoBody(), b.access_token);
        assert.equal(r.status, 429);
        assert.equal(r.json.error.code, 'rate_limit_exceeded');
        assert.equal(r.json.rate_limit_and_credit_balance.rate_limit_reached, true);
        await h.ctl('POST', '/quota', { email: b.email, resets_in: 0.2, refill_to: 2 });
        await sleep(250);
        const q = (await h.get('/backend/nf/check', b.access_token)).json.rate_limit_and_credit_balance;
        assert.equal(q.estimated_num_videos_remaining, 2);
        assert.ok(q.access_resets_in_seconds > 86000, 'next window starts');
    });

    it('remaining null means unlimited', async () => {
        const b = await h.account({ remaining: null });
        assert.equal((await h.get('/backend/nf/check', b.access_token)).json.rate_limit_and_credit_balance.estimated_num_videos_remaining, 9999);
    });
});

describe('storyboard', () => {
    const sbPrompt = 'current timeline:\nShot 1:\nduration: 5sec\nScene: a cat walks in\n\nShot 2:\nduration: 2.5sec\nScene: the cat jumps\n\ninstructions:\nmake it cute';
    const sbBody = (over = {}) => videoBody({
        prompt: sbPrompt, title: 'Draft your video', storyboard_id: null, remix_target_id: null, metadata: null,
        style_id: null, cameo_ids: null, cameo_replacements: null, audio_caption: null, audio_transcript: null, video_caption: null, ...over,
    });

    it('records the parsed shots and runs like a video', async () => {
        const r = await h.gen('/backend/nf/create/storyboard', a.access_token, sbBody());
        assert.equal(r.status, 200);
        const t = await h.ctl('GET', `/tasks/${r.json.id}`);
        assert.equal(t.kind, 'storyboard');
        assert.equal(t.title, 'Draft your video');
        assert.deepEqual(t.storyboard.shots, [
            { index: 1, duration_s: 5, scene: 'a cat walks in' },
            { index: 2, duration_s: 2.5, scene: 'the cat jumps' },
        ]);
        assert.equal(t.storyboard.instructions, 'make it cute');
        assert.equal(t.storyboard.timeline_header, true);
        assert.equal(t.request.prompt, sbPrompt);
        await drainPending(r.json.id);
        assert.ok((await draftOf(r.json.id)).url);
    });

    it('rejects an unformatted prompt and a storyboard_id while strict', async () => {
        const r = await h.gen('/backend/nf/create/storyboard', a.access_token, sbBody({ prompt: '[5s] a cat' }));
        assert.equal(r.status, 400);
        assert.equal(r.json.error.code, 'invalid_storyboard_prompt');
        const gap = await h.gen('/backend/nf/create/storyboard', a.access_token, sbBody({ prompt: 'Shot 2:\nduration: 5sec\nScene: x' }));
        assert.equal(gap.json.error.code, 'invalid_storyboard_prompt');
        const id = await h.gen('/backend/nf/create/storyboard', a.access_token, sbBody({ storyboard_id: 'sb_1' }));
        assert.equal(id.json.error.code, 'invalid_storyboard');
        await h.ctl('POST', '/config', { storyboard_strict: false });
        assert.equal((await h.gen('/backend/nf/create/storyboard', a.access_token, sbBody({ prompt: '[5s] a cat' }))).status, 200);
    });
});

describe('remix', () => {
    const remixBody = (over = {}) => ({
        kind: 'video', prompt: 'make it snow', inpaint_items: [], remix_target_id: SEEDED_POST,
        cameo_ids: [], cameo_replacements: {}, model: 'sy_8', orientation: 'portrait', n_frames: 300, ...over,
    });

    it('remixes a known post and records the target', async () => {
        const r = await create(remixBody());
        assert.equal(r.status, 200);
        const t = await h.ctl('GET', `/tasks/${r.json.id}`);
        assert.equal(t.kind, 'remix');
        assert.equal(t.remix_target_id, SEEDED_POST);
        assert.equal(t.size, null);
        const posts = (await h.ctl('GET', '/state')).posts;
        assert.equal(posts.find((p) => p.id === SEEDED_POST).remix_count, 2);
        await drainPending(r.json.id);
        const d = await draftOf(r.json.id);
        assert.deepEqual([d.width, d.height], [704, 1280]);
    });

    it('allows an empty cleaned prompt, and 404s an unknown target', async () => {
        assert.equal((await create(remixBody({ prompt: '' }))).status, 200);
        const r = await create(remixBody({ remix_target_id: 's_' + '0'.repeat(32) }));
        assert.equal(r.status, 404);
        assert.equal(r.json.error.param, 'remix_target_id');
    });

    it('records @mentions and resolves characters', async () => {
        const r = await create(videoBody({ prompt: '@fluffycat417 dances with @nobody_here' }));
        const t = await h.ctl('GET', `/tasks/${r.json.id}`);
        assert.deepEqual(t.mentions, [
            { username: 'fluffycat417', character_id: 'ch_693b0192af888191ac8b3af188acebce', user_id: null },
            { username: 'nobody_here', character_id: null, user_id: null },
        ]);
    });
});

describe('sentinel strictness', () => {
    it('presence (default): a missing or empty header gives 400 on all four generation/publish POSTs', async () => {
        for (const path of ['/backend/nf/create', '/backend/nf/create/storyboard', '/backend/video_gen', '/backend/project_y/post']) {
            const r = await h.post(path, a.access_token, {});
            assert.equal(r.status, 400, path);
            assert.equal(r.json.error.code, 'invalid_sentinel', path);
            const empty = await h.post(path, a.access_token, {}, { headers: { 'openai-sentinel-token': ' ' } });
            assert.equal(empty.json.error.code, 'invalid_sentinel', path);
        }
        assert.equal((await h.get('/backend/nf/pending', a.access_token)).status, 200, 'reads need no sentinel');
    });

    it('off accepts no header; json needs {p, c, flow}', async () => {
        await h.ctl('POST', '/config', { sentinel: 'off' });
        assert.equal((await h.post('/backend/nf/create', a.access_token, videoBody())).status, 200);
        await h.ctl('POST', '/config', { sentinel: 'json' });
        const random = await create();
        assert.equal(random.status, 400, 'random text is not JSON');
        const token = JSON.stringify({ p: 'gAAAAABxyz', t: '', c: 'gAAAAABchallenge', id: '0b6c1c8e-0000-4000-8000-000000000000', flow: 'sora_2_create_task' });
        const ok = await h.post('/backend/nf/create', a.access_token, videoBody(), { headers: { 'openai-sentinel-token': token } });
        assert.equal(ok.status, 200);
        const t = await h.ctl('GET', `/tasks/${ok.json.id}`);
        assert.equal(t.sentinel, token);
        const stats = await h.ctl('GET', '/stats');
        assert.equal(stats.counters.rejected.sentinel, 1);
    });
});

describe('draft media: thumbnails, signed URLs (media_url_ttl_s), large videos (video_bytes)', () => {
    const finished = async () => {
        const id = (await create()).json.id;
        await drainPending(id);
        return draftOf(id);
    };

    it('a finished draft carries its thumbnail, a JPEG served as image/jpeg', async () => {
        const d = await finished();
        assert.equal(d.encodings.thumbnail.path, `${h.url}/media/thumb/${d.id}.jpg`);
        const r = await h.req('GET', `/media/thumb/${d.id}.jpg`);
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'image/jpeg');
        assert.deepEqual(r.buf, MEDIA.jpeg);
    });

    it('with media_url_ttl_s the URLs are signed with se = creation + TTL; a passed se gets 403', async () => {
        await h.ctl('POST', '/config', { media_url_ttl_s: 3600 });
        const t0 = Math.floor(Date.now() / 1000);
        const d = await finished();
        for (const u of [d.url, d.downloadable_url, d.encodings.thumbnail.path]) {
            const url = new URL(u);
            assert.match(url.search, /^\?se=\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\dZ&sp=r&sv=2024-08-04&sr=b&sig=[A-Za-z0-9%]+$/, u);
            const se = Date.parse(url.searchParams.get('se')) / 1000;
            assert.ok(se >= t0 + 3600 && se <= t0 + 3602, `se ${se}`);
        }
        assert.equal(d.downloadable_url, (await draftOf(d.task_id)).downloadable_url, 'the same URL on every read');
        const ok = await h.req('GET', new URL(d.downloadable_url).pathname + new URL(d.downloadable_url).search);
        assert.equal(ok.status, 200);
        assert.deepEqual(ok.buf, MEDIA.mp4);
        await h.ctl('POST', '/config', { media_url_ttl_s: -5 });
        const old = await finished();
        const u = new URL(old.encodings.thumbnail.path);
        const r = await h.req('GET', u.pathname + u.search);
        assert.equal(r.status, 403);
        assert.match(r.text, /<Code>AuthenticationFailed<\/Code>/);
        assert.equal((await h.ctl('GET', '/stats')).counters.media.expired, 1);
        // Unsigned paths are served whatever the setting.
        assert.equal((await h.req('GET', u.pathname)).status, 200);
    });

    it('video_bytes: /media/vid/*.mp4 is that large, a valid MP4, the same bytes each time, with ranges', async () => {
        const size = 3 * 1024 * 1024 + 5;
        await h.ctl('POST', '/config', { video_bytes: size });
        const r = await h.req('GET', '/media/vid/any.mp4');
        assert.equal(r.status, 200);
        assert.equal(r.buf.length, size);
        assert.deepEqual(r.buf.subarray(0, MEDIA.mp4.length), MEDIA.mp4);
        assert.equal(r.buf.readUInt32BE(MEDIA.mp4.length), size - MEDIA.mp4.length);
        assert.equal(r.buf.toString('latin1', MEDIA.mp4.length + 4, MEDIA.mp4.length + 8), 'free');
        const again = await h.req('GET', '/media/vid/other.mp4');
        assert.deepEqual(again.buf, r.buf);
        assert.equal(again.headers.get('etag'), r.headers.get('etag'));
        assert.notEqual(r.headers.get('etag'), (await h.req('GET', '/media/thumb/x.jpg')).headers.get('etag'));
        const part = await h.req('GET', '/media/vid/any.mp4', { headers: { range: `bytes=${size - 4}-` } });
        assert.equal(part.status, 206);
        assert.deepEqual(part.buf, r.buf.subarray(size - 4));
        // Other media keep their small files.
        assert.equal((await h.req('GET', '/media/thumb/x.jpg')).buf.length, MEDIA.jpeg.length);
        const m = (await h.ctl('GET', '/stats')).counters.media;
        assert.equal(m.started, m.finished);
        assert.equal(m.open, 0);
    });
});
