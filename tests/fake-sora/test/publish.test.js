'use strict';
/* Watermark-free flow: publish a draft, custom parse server, third-party CDN, delete the post (doc 5.7). */

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

/* Run one video to completion; returns its draft item. */
async function finishedDraft(prompt = 'a cat surfing', token = a.access_token) {
    const id = (await h.gen('/backend/nf/create', token, videoBody({ prompt }))).json.id;
    for (let i = 0; i < 10 && (await h.get('/backend/nf/pending', token)).json.length; i++) { /* drain */ }
    return (await h.get('/backend/project_y/profile/drafts?limit=15', token)).json.items.find((d) => d.task_id === id);
}

const publish = (genId, token = a.access_token) => h.gen('/backend/project_y/post', token, {
    attachments_to_create: [{ generation_id: genId, kind: 'sora' }], post_text: '',
});

describe('POST /backend/project_y/post', () => {
    it('publishes a draft as s_<32hex> (X17) and links the draft to it', async () => {
        const d = await finishedDraft();
        const r = await publish(d.id);
        assert.equal(r.status, 200);
        const p = r.json.post;
        assert.match(p.id, /^s_[0-9a-f]{32}$/);
        assert.equal(p.permalink, `https://sora.chatgpt.com/p/${p.id}`);
        assert.equal(p.text, '');
        assert.equal(p.attachments[0].generation_id, d.id);
        assert.equal(p.attachments[0].id, `${p.id}-attachment-0`);
        const again = (await h.get('/backend/project_y/profile/drafts', a.access_token)).json.items[0];
        assert.equal(again.post_id, p.id);
        assert.equal(again.permalink, p.permalink);
        const feed = (await h.get('/backend/project_y/profile_feed/me?limit=5&cut=nf2', a.access_token)).json;
        assert.equal(feed.items[0].post.id, p.id);
    });

    it('refuses unknown, foreign and violating generations, and malformed bodies', async () => {
        const other = await h.account();
        const d = await finishedDraft();
        const v = await finishedDraft('x #violate');
        assert.equal((await publish('gen_nope')).status, 404);
        assert.equal((await publish(d.id, other.access_token)).status, 404);
        assert.equal((await publish(v.id)).json.error.code, 'generation_not_postable');
        const bad = await h.gen('/backend/project_y/post', a.access_token, { attachments_to_create: [] });
        assert.equal(bad.json.error.code, 'invalid_attachments');
        const kind = await h.gen('/backend/project_y/post', a.access_token, { attachments_to_create: [{ generation_id: d.id, kind: 'image' }] });
        assert.equal(kind.json.error.code, 'invalid_attachments');
    });
});

describe('watermark-free retrieval', () => {
    it('custom parse server returns a download link that serves MP4 bytes', async () => {
        const post = (await publish((await finishedDraft()).id)).json.post;
        const r = await h.req('POST', '/get-sora-link', { body: { url: `https://sora.chatgpt.com/p/${post.id}`, token: 'fake-parse-token' } });
        assert.equal(r.status, 200);
        assert.equal(r.json.download_link, `${h.url}/MP4/${post.id}.mp4`);
        const mp4 = await h.req('GET', `/MP4/${post.id}.mp4`);
        assert.equal(mp4.status, 200);
        assert.equal(mp4.headers.get('content-type'), 'video/mp4');
        assert.equal(mp4.buf.toString('latin1', 4, 8), 'ftyp');
        const [e] = await h.journal('?route=POST%20/get-sora-link');
        assert.deepEqual(e.body, { url: `https://sora.chatgpt.com/p/${post.id}`, token: 'fake-parse-token' });
    });

    it('custom parse server reports errors in a 200 body', async () => {
        const post = (await publish((await finishedDraft()).id)).json.post;
        const wrong = await h.req('POST', '/get-sora-link', { body: { url: `https://sora.chatgpt.com/p/${post.id}`, token: 'nope' } });
        assert.deepEqual([wrong.status, wrong.json], [200, { error: 'invalid token' }]);
        const url = await h.req('POST', '/get-sora-link', { body: { url: 'https://example.test/x', token: 'fake-parse-token' } });
        assert.equal(url.json.error, 'invalid url');
        const missing = await h.req('POST', '/get-sora-link', { body: { url: `https://sora.chatgpt.com/p/s_${'1'.repeat(32)}`, token: 'fake-parse-token' } });
        assert.equal(missing.json.error, 'post not found');
        await h.ctl('POST', '/config', { parse_token: 'other' });
        const changed = await h.req('POST', '/get-sora-link', { body: { url: `https://sora.chatgpt.com/p/${post.id}`, token: 'other' } });
        assert.ok(changed.json.download_link);
    });

    it('third-party CDN path 404s for unknown posts and after delete', async () => {
        const post = (await publish((await finishedDraft()).id)).json.post;
        assert.equal((await h.req('GET', `/MP4/s_${'2'.repeat(32)}.mp4`)).status, 404);
        assert.equal((await h.req('GET', '/MP4/nonsense.mp4')).status, 404);
        const del = await h.del(`/backend/project_y/post/${post.id}`, a.access_token);
        assert.equal(del.status, 204);
        assert.equal(del.text, '');
        assert.equal((await h.req('GET', `/MP4/${post.id}.mp4`)).status, 404);
        await h.ctl('POST', '/config', { watermark_free_requires_post: false });
        assert.equal((await h.req('GET', `/MP4/${post.id}.mp4`)).status, 200);
    });
});

describe('DELETE /backend/project_y/post/{id}', () => {
    it('404s an unknown post and 403s a foreign one; the journal shows no body', async () => {
        const other = await h.account();
        const post = (await publish((await finishedDraft()).id)).json.post;
        assert.equal((await h.del(`/backend/project_y/post/s_${'3'.repeat(32)}`, a.access_token)).status, 404);
        assert.equal((await h.del(`/backend/project_y/post/${post.id}`, other.access_token)).status, 403);
        assert.equal((await h.del(`/backend/project_y/post/${post.id}`, a.access_token)).status, 204);
        const entries = await h.journal('?route=DELETE%20/backend/project_y/post/{id}');
        assert.equal(entries.length, 3);
        assert.equal(entries[2].body_size, 0);
        assert.equal(entries[2].headers['content-type'], undefined);
        const stats = await h.ctl('GET', '/stats');
        assert.deepEqual(stats.by_route['DELETE /backend/project_y/post/{id}'].statuses, { 204: 1, 403: 1, 404: 1 });
    });
});
