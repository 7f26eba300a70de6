'use strict';
/* Uploads (multipart) and the image task lifecycle via /v2/recent_tasks (protocol doc E9-E11, 5.3). */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake, imageBody, fileForm, sleep } = require('../lib/harness.js');
const { MEDIA } = require('../server.js');

let h;
let a;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(async () => {
    await h.reset();
    a = await h.account();
});

const pngForm = () => fileForm({ file_name: 'image.png' }, { data: MEDIA.png, type: 'image/png', filename: 'image.png' });

async function upload(token = a.access_token, form = pngForm()) {
    return h.req('POST', '/backend/uploads', { token, form });
}

describe('POST /backend/uploads', () => {
    it('stores a PNG upload and returns a media_ id (X9)', async () => {
        const r = await upload();
        assert.equal(r.status, 200);
        assert.match(r.json.id, /^media_[0-9a-z]{26}$/);
        assert.equal(r.json.type, 'image');
        assert.equal(r.json.filename, 'image.png');
        assert.equal(r.json.width, 16, 'PNG dimensions come from IHDR');
        assert.equal(r.json.height, 16);
    });

    it('records the multipart parts in the journal', async () => {
        await upload();
        const [e] = await h.journal('?route=POST%20/backend/uploads');
        assert.match(e.headers['content-type'], /^multipart\/form-data; boundary=/);
        const file = e.parts.find((p) => p.name === 'file');
        assert.equal(file.filename, 'image.png');
        assert.equal(file.content_type, 'image/png');
        assert.equal(file.size, MEDIA.png.length);
        assert.equal(file.sniffed, 'png');
        assert.match(file.sha256, /^[0-9a-f]{64}$/);
        assert.equal(file.value, undefined, 'file bytes are never journaled');
        const name = e.parts.find((p) => p.name === 'file_name');
        assert.equal(name.value, 'image.png');
        assert.equal(name.filename, null);
    });

    it('accepts JPEG bytes labelled as image.png (the gateway always says PNG)', async () => {
        const r = await upload(a.access_token, fileForm({ file_name: 'image.png' }, { data: MEDIA.jpeg, type: 'image/png', filename: 'image.png' }));
        assert.equal(r.status, 200);
    });

    it('rejects non-image bytes with 400 invalid_file, a missing file, and a non-multipart body', async () => {
        const junk = await upload(a.access_token, fileForm({}, { data: Buffer.from('hello'), type: 'image/png', filename: 'image.png' }));
        assert.equal(junk.status, 400);
        assert.deepEqual([junk.json.error.message, junk.json.error.code], ['Invalid image', 'invalid_file']);
        const none = await upload(a.access_token, fileForm({ file_name: 'image.png' }));
        assert.equal(none.json.error.code, 'missing_file');
        const json = await h.post('/backend/uploads', a.access_token, { file: 'x' });
        assert.equal(json.json.error.code, 'invalid_content_type');
    });

    it('parses a hand-written multipart body with quoted and RFC 5987 names', async () => {
        const boundary = 'XyZ123';
        const body = Buffer.concat([
            Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename*=UTF-8''%C3%A9t%C3%A9.png\r\nContent-Type: image/png\r\n\r\n`),
            MEDIA.png,
            Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\nsemi;colon "q".png\r\n--${boundary}--\r\n`),
        ]);
        const r = await h.req('POST', '/backend/uploads', {
            token: a.access_token, raw: body, headers: { 'content-type': `multipart/form-data; boundary="${boundary}"` },
        });
        assert.equal(r.status, 200);
        assert.equal(r.json.filename, 'semi;colon "q".png');
        const [e] = await h.journal('?route=POST%20/backend/uploads');
        assert.equal(e.parts[0].filename, 'été.png');
    });

    it('rejects a truncated multipart body with 400 invalid_multipart', async () => {
        const r = await h.req('POST', '/backend/uploads', {
            token: a.access_token, raw: '--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
            headers: { 'content-type': 'multipart/form-data; boundary=b' },
        });
        assert.equal(r.status, 400);
        assert.equal(r.json.error.code, 'invalid_multipart');
    });
});

describe('POST /backend/video_gen', () => {
    it('creates an image task (X10) and needs the sentinel header', async () => {
        const r = await h.gen('/backend/video_gen', a.access_token, imageBody());
        assert.equal(r.status, 200);
        assert.match(r.json.id, /^task_[0-9a-z]{26}$/);
        assert.equal(r.json.type, 'image_gen');
        const noSentinel = await h.post('/backend/video_gen', a.access_token, imageBody());
        assert.equal(noSentinel.status, 400);
        assert.equal(noSentinel.json.error.code, 'invalid_sentinel');
    });

    it('validates type, operation, prompt, sizes and inpaint items', async () => {
        const cases = [
            [{ type: 'video_gen' }, 'invalid_type'],
            [{ operation: 'edit' }, 'invalid_operation'],
            [{ prompt: '  ' }, 'invalid_prompt'],
            [{ width: 'wide' }, 'invalid_size'],
            [{ n_variants: 9 }, 'invalid_n_variants'],
            [{ n_frames: 2 }, 'invalid_n_frames'],
            [{ inpaint_items: [{ type: 'image', frame_index: 0, upload_media_id: 'media_unknown' }], operation: 'remix' }, 'invalid_upload'],
            [{ inpaint_items: [{ kind: 'upload', upload_id: 'x' }] }, 'invalid_inpaint_items'],
            [{ operation: 'remix' }, 'invalid_operation'],
        ];
        for (const [over, code] of cases) {
            const r = await h.gen('/backend/video_gen', a.access_token, imageBody(over));
            assert.equal(r.status, 400, JSON.stringify(over));
            assert.equal(r.json.error.code, code, JSON.stringify(over));
        }
    });

    it('accepts image-to-image with the caller\'s own upload only', async () => {
        const up = (await upload()).json.id;
        const other = await h.account();
        const body = imageBody({ operation: 'remix', inpaint_items: [{ type: 'image', frame_index: 0, upload_media_id: up }] });
        assert.equal((await h.gen('/backend/video_gen', a.access_token, body)).status, 200);
        assert.equal((await h.gen('/backend/video_gen', other.access_token, body)).json.error.code, 'invalid_upload');
    });
});

describe('image lifecycle via GET /backend/v2/recent_tasks', () => {
    const recent = (token = a.access_token) => h.get('/backend/v2/recent_tasks?limit=20', token);
    const find = (json, id) => json.task_responses.find((t) => t.id === id);

    it('default script: processing 0.5 for one poll, then succeeded with generations', async () => {
        const id = (await h.gen('/backend/video_gen', a.access_token, imageBody({ width: 540, height: 360 }))).json.id;
        const p1 = find((await recent()).json, id);
        assert.equal(p1.status, 'processing');
        assert.equal(p1.progress_pct, 0.5);
        assert.deepEqual(p1.generations, []);
        const p2 = find((await recent()).json, id);
        assert.equal(p2.status, 'succeeded');
        assert.equal(p2.progress_pct, 1);
        assert.equal(p2.generations.length, 1);
        assert.match(p2.generations[0].url, new RegExp(`^${h.url}/media/img/gen_[0-9a-z]{26}\\.png$`));
        assert.equal(p2.generations[0].width, 540);
        const img = await h.req('GET', new URL(p2.generations[0].url).pathname);
        assert.equal(img.headers.get('content-type'), 'image/png');
        assert.deepEqual(find((await recent()).json, id), p2, 'final state is stable');
    });

    it('lists only the caller\'s tasks, newest first, honouring limit', async () => {
        const ids = [];
        for (let i = 0; i < 3; i++) {
            ids.push((await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: `p${i}` }))).json.id);
        }
        const other = await h.account();
        await h.gen('/backend/video_gen', other.access_token, imageBody());
        const r = await h.get('/backend/v2/recent_tasks?limit=2', a.access_token);
        assert.deepEqual(r.json.task_responses.map((t) => t.id), [ids[2], ids[1]]);
        assert.equal(r.json.last_id, ids[1]);
    });

    it('#fail gives status failed with error_message; progress stays numeric', async () => {
        const id = (await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: 'a fox #fail' }))).json.id;
        await recent();
        const t = find((await recent()).json, id);
        assert.equal(t.status, 'failed');
        assert.equal(t.error_message, 'Image generation failed due to an internal error.');
        assert.equal(typeof t.progress_pct, 'number');
    });

    it('#empty succeeds without generations; #invisible hides the task for two reads; #stall never ends', async () => {
        const empty = (await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: '#empty' }))).json.id;
        const inv = (await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: '#invisible' }))).json.id;
        const stall = (await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: '#stall' }))).json.id;
        const r1 = (await recent()).json;
        assert.equal(find(r1, inv), undefined);
        const r2 = (await recent()).json;
        assert.equal(find(r2, inv), undefined);
        assert.deepEqual([find(r2, empty).status, find(r2, empty).generations], ['succeeded', []]);
        assert.equal(find((await recent()).json, inv).status, 'processing');
        for (let i = 0; i < 5; i++) {
            await recent();
        }
        const s = find((await recent()).json, stall);
        assert.deepEqual([s.status, s.progress_pct], ['processing', 0.5]);
    });

    it('script path: every generation at one fixed media URL; a bad path is refused', async () => {
        await h.ctl('POST', '/script', { keywords: { '#same': { image: { path: '/media/img/same-pic.png' } } } });
        const ids = [];
        for (let i = 0; i < 2; i++) {
            ids.push((await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: `p${i} #same` }))).json.id);
        }
        await recent();
        const r = (await recent()).json;
        for (const id of ids) {
            assert.equal(find(r, id).generations[0].url, `${h.url}/media/img/same-pic.png`);
        }
        const bad = await h.req('POST', '/__fake/script', { body: { image: { path: '/elsewhere/x.png' } } });
        assert.equal(bad.status, 400);
    });

    it('a seconds-mode script finishes on the clock, not on reads', async () => {
        await h.ctl('POST', '/script', { image: { mode: 'seconds', duration_s: 0.3 } });
        const id = (await h.gen('/backend/video_gen', a.access_token, imageBody())).json.id;
        const t1 = find((await recent()).json, id);
        assert.equal(t1.status, 'processing');
        assert.ok(t1.progress_pct > 0 && t1.progress_pct < 1);
        await sleep(350);
        assert.equal(find((await recent()).json, id).status, 'succeeded');
    });

    it('the keyword #reject refuses the prompt at submit time', async () => {
        const r = await h.gen('/backend/video_gen', a.access_token, imageBody({ prompt: 'bad #reject' }));
        assert.equal(r.status, 400);
        assert.equal(r.json.error.code, 'content_policy_violation');
    });
});
