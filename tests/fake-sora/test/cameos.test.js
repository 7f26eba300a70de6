'use strict';
/* Character creation: upload, in_progress polling, avatar upload, finalize, update_v2, delete (doc 5.8, 5.9). */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake, fileForm } = require('../lib/harness.js');
const { MEDIA } = require('../server.js');

let h;
let a;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(async () => {
    await h.reset();
    a = await h.account({ username: 'tester.one' });
});

const uploadVideo = (fields = { timestamps: '0,3' }, data = MEDIA.mp4, token = a.access_token) =>
    h.req('POST', '/backend/characters/upload', { token, form: fileForm(fields, { data, type: 'video/mp4', filename: 'video.mp4' }) });
const inProgress = (id, token = a.access_token) => h.get(`/backend/project_y/cameos/in_progress/${id}`, token);
const uploadAvatar = (useCase = 'profile', token = a.access_token) =>
    h.req('POST', '/backend/project_y/file/upload', { token, form: fileForm({ use_case: useCase }, { data: MEDIA.webp, type: 'image/webp', filename: 'profile.webp' }) });

/* Upload and poll until Completed; returns [cameoId, completedBody]. */
async function readyCameo() {
    const id = (await uploadVideo()).json.id;
    let body;
    do {
        body = (await inProgress(id)).json;
    } while (body.status_message !== 'Completed');
    return [id, body];
}

const finalizeBody = (cameoId, pointer, over = {}) => ({
    cameo_id: cameoId, username: 'fluffycat123', display_name: 'Fluffy Cat', profile_asset_pointer: pointer,
    instruction_set: { value: [{ type: 'text', value: 'A fluffy white cat.' }] }, safety_instruction_set: null, ...over,
});

describe('POST /backend/characters/upload', () => {
    it('creates a cameo (X21) and journals the timestamps field', async () => {
        const r = await uploadVideo({ timestamps: '1,5' });
        assert.equal(r.status, 200);
        assert.match(r.json.id, /^[0-9a-f]{32}$/);
        assert.equal(r.json.status, 'processing');
        const [e] = await h.journal('?route=POST%20/backend/characters/upload');
        assert.equal(e.parts.find((p) => p.name === 'timestamps').value, '1,5');
        const file = e.parts.find((p) => p.name === 'file');
        assert.deepEqual([file.filename, file.content_type, file.sniffed], ['video.mp4', 'video/mp4', 'mp4']);
        const st = await h.ctl('GET', '/state');
        assert.deepEqual(st.cameos[0].timestamps_parsed, [1, 5]);
    });

    it('rejects non-video bytes and bad or missing timestamps', async () => {
        assert.equal((await uploadVideo({ timestamps: '0,3' }, MEDIA.png)).json.error.code, 'invalid_file');
        assert.equal((await uploadVideo({ timestamps: '3,1' })).json.error.code, 'invalid_timestamps');
        assert.equal((await uploadVideo({})).json.error.code, 'invalid_timestamps');
    });
});

describe('cameo lifecycle', () => {
    it('answers Processing twice, then Completed with hints and an avatar URL (X22)', async () => {
        const id = (await uploadVideo()).json.id;
        for (let i = 0; i < 2; i++) {
            const p = (await inProgress(id)).json;
            assert.deepEqual([p.status, p.status_message, p.profile_asset_url, p.username_hint], ['processing', 'Processing', null, null]);
        }
        const done = (await inProgress(id)).json;
        assert.equal(done.status_message, 'Completed');
        assert.equal(done.status, 'ready');
        assert.match(done.username_hint, /^tester\.one\.[a-z]+$/);
        assert.equal(typeof done.display_name_hint, 'string');
        assert.equal(typeof done.instruction_set_hint, 'string');
        assert.match(done.profile_asset_url, new RegExp(`^${h.url}/media/avatar/cameo_[0-9a-f]{8}\\.webp$`));
        const avatar = await h.req('GET', new URL(done.profile_asset_url).pathname);
        assert.equal(avatar.headers.get('content-type'), 'image/webp');
        assert.equal(avatar.buf.toString('latin1', 8, 12), 'WEBP');
    });

    it('is private to its owner', async () => {
        const other = await h.account();
        const id = (await uploadVideo()).json.id;
        assert.equal((await inProgress(id, other.access_token)).status, 404);
    });

    it('scripts: never completes, no avatar, custom hints, seconds', async () => {
        await h.ctl('POST', '/script', { next: { cameo: [{ outcome: 'never' }, { outcome: 'no_asset', processing_polls: 0, username_hint: 'x.snowy' }] } });
        const never = (await uploadVideo()).json.id;
        const noAsset = (await uploadVideo()).json.id;
        for (let i = 0; i < 6; i++) {
            assert.equal((await inProgress(never)).json.status_message, 'Processing');
        }
        const na = (await inProgress(noAsset)).json;
        assert.deepEqual([na.status_message, na.profile_asset_url, na.username_hint], ['Completed', null, 'x.snowy']);
    });
});

describe('avatar upload, finalize, update_v2, delete', () => {
    it('POST /backend/project_y/file/upload returns a sediment:// pointer (X24)', async () => {
        const r = await uploadAvatar();
        assert.equal(r.status, 200);
        assert.match(r.json.file_id, /^file_[0-9a-f]{20}$/);
        assert.equal(r.json.asset_pointer, `sediment://${r.json.file_id}`);
        assert.equal(r.json.size, MEDIA.webp.length);
        assert.equal(r.json.url, `${h.url}/media/${r.json.file_id}.webp`);
        const [e] = await h.journal('?route=POST%20/backend/project_y/file/upload');
        assert.equal(e.parts.find((p) => p.name === 'use_case').value, 'profile');
        const noUse = await h.req('POST', '/backend/project_y/file/upload', {
            token: a.access_token, form: fileForm({}, { data: MEDIA.webp, type: 'image/webp', filename: 'profile.webp' }),
        });
        assert.equal(noUse.json.error.code, 'invalid_use_case');
    });

    it('finalize creates ch_<32hex> and reserves the username (X25)', async () => {
        const [cameoId] = await readyCameo();
        const ptr = (await uploadAvatar()).json.asset_pointer;
        const r = await h.post('/backend/characters/finalize', a.access_token, finalizeBody(cameoId, ptr));
        assert.equal(r.status, 200);
        const ch = r.json.character;
        assert.match(ch.character_id, /^ch_[0-9a-f]{32}$/);
        assert.deepEqual([ch.cameo_id, ch.username, ch.display_name, ch.visibility], [cameoId, 'fluffycat123', 'Fluffy Cat', 'private']);
        const check = await h.post('/backend/project_y/profile/username/check', a.access_token, { username: 'fluffycat123' });
        assert.equal(check.json.available, false);
        assert.equal((await inProgress(cameoId)).json.status, 'finalized');
        const prof = await h.get('/backend/project_y/profile/username/fluffycat123', a.access_token);
        assert.equal(prof.json.user_id, ch.character_id);
    });

    it('finalize validates cameo state, username, pointer and instruction sets', async () => {
        const processing = (await uploadVideo()).json.id;
        const [cameoId] = await readyCameo();
        const ptr = (await uploadAvatar()).json.asset_pointer;
        const fin = (over) => h.post('/backend/characters/finalize', a.access_token, finalizeBody(cameoId, ptr, over));
        assert.equal((await h.post('/backend/characters/finalize', a.access_token, finalizeBody(processing, ptr))).json.error.code, 'cameo_not_ready');
        assert.equal((await fin({ cameo_id: 'f'.repeat(32) })).status, 404);
        assert.equal((await fin({ username: 'fluffycat417' })).json.error.code, 'username_taken', 'the seeded character owns it');
        assert.equal((await fin({ username: 'No Way' })).json.error.code, 'invalid_username');
        assert.equal((await fin({ profile_asset_pointer: 'sediment://file_unknown' })).json.error.code, 'invalid_asset_pointer');
        assert.equal((await fin({ instruction_set: 'plain string' })).json.error.code, 'invalid_instruction_set');
        assert.equal((await fin({ instruction_set: null })).status, 200, 'null instruction sets are allowed');
        assert.equal((await fin({ username: 'again123' })).json.error.code, 'cameo_already_finalized');
    });

    it('update_v2 applies visibility and instruction sets (X26); unknown cameo 404', async () => {
        const [cameoId] = await readyCameo();
        const ptr = (await uploadAvatar()).json.asset_pointer;
        const ch = (await h.post('/backend/characters/finalize', a.access_token, finalizeBody(cameoId, ptr))).json.character;
        const r = await h.post(`/backend/project_y/cameos/by_id/${cameoId}/update_v2`, a.access_token, { visibility: 'public' });
        assert.equal(r.status, 200);
        assert.equal(r.json.cameo.id, cameoId);
        assert.equal(r.json.cameo.visibility, 'public');
        const ins = { value: [{ type: 'text', value: 'Always wears a hat.' }] };
        const r2 = await h.post(`/backend/project_y/cameos/by_id/${cameoId}/update_v2`, a.access_token, { safety_instruction_set: ins });
        assert.deepEqual(r2.json.cameo.safety_instruction_set, ins);
        assert.equal((await h.post(`/backend/project_y/cameos/by_id/${'0'.repeat(32)}/update_v2`, a.access_token, { visibility: 'public' })).status, 404);
        assert.equal((await h.post(`/backend/project_y/cameos/by_id/${cameoId}/update_v2`, a.access_token, { visibility: 'secret' })).status, 400);
        const other = await h.account();
        const found = await h.get('/backend/project_y/profile/search_mentions?username=fluffycat1&intent=cameo&limit=5', other.access_token);
        assert.deepEqual(found.json.items.map((i) => i.token), [`<@${ch.character_id}>`], 'public characters can be cameoed');
    });

    it('update_v2 takes display_name: stored on the cameo and its character; blank refused', async () => {
        const [cameoId] = await readyCameo();
        const ptr = (await uploadAvatar()).json.asset_pointer;
        const ch = (await h.post('/backend/characters/finalize', a.access_token, finalizeBody(cameoId, ptr))).json.character;
        const r = await h.post(`/backend/project_y/cameos/by_id/${cameoId}/update_v2`, a.access_token, { display_name: 'Sir Fluff' });
        assert.equal(r.status, 200);
        assert.equal(r.json.cameo.display_name, 'Sir Fluff');
        const state = (await h.get('/__fake/state')).json;
        assert.equal(state.cameos.find((c) => c.id === cameoId).display_name, 'Sir Fluff');
        assert.equal(state.characters.find((c) => c.character_id === ch.character_id).display_name, 'Sir Fluff');
        const blank = await h.post(`/backend/project_y/cameos/by_id/${cameoId}/update_v2`, a.access_token, { display_name: '  ' });
        assert.equal(blank.status, 400);
        assert.equal(blank.json.error.code, 'invalid_display_name');
        assert.equal((await h.post(`/backend/project_y/cameos/by_id/${cameoId}/update_v2`, a.access_token, { display_name: 5 })).status, 400);
    });

    it('DELETE characters/{id} answers 204 and frees the username; unknown 404', async () => {
        const [cameoId] = await readyCameo();
        const ptr = (await uploadAvatar()).json.asset_pointer;
        const ch = (await h.post('/backend/characters/finalize', a.access_token, finalizeBody(cameoId, ptr))).json.character;
        const r = await h.del(`/backend/project_y/characters/${ch.character_id}`, a.access_token);
        assert.equal(r.status, 204);
        assert.equal(r.headers.get('content-type'), null);
        assert.equal((await h.del(`/backend/project_y/characters/${ch.character_id}`, a.access_token)).status, 404);
        const check = await h.post('/backend/project_y/profile/username/check', a.access_token, { username: 'fluffycat123' });
        assert.equal(check.json.available, true);
    });

    it('character + video: @username in the prompt resolves to the new character', async () => {
        const [cameoId] = await readyCameo();
        const ptr = (await uploadAvatar()).json.asset_pointer;
        const ch = (await h.post('/backend/characters/finalize', a.access_token, finalizeBody(cameoId, ptr))).json.character;
        const r = await h.gen('/backend/nf/create', a.access_token, {
            kind: 'video', prompt: `@${ch.username} waves hello`, orientation: 'portrait', size: 'small', n_frames: 300, model: 'sy_8', inpaint_items: [],
        });
        const t = await h.ctl('GET', `/tasks/${r.json.id}`);
        assert.equal(t.mentions[0].character_id, ch.character_id);
    });
});

describe('cameo failure states', () => {
    it('ends failed or rejected with a status_message after the processing polls', async () => {
        for (const [outcome, msg] of [['failed', /could not find a person/], ['rejected', /content guidelines/]]) {
            await h.ctl('POST', '/script', { next: { cameo: [{ outcome, processing_polls: 1 }] } });
            const id = (await uploadVideo()).json.id;
            let body = (await inProgress(id)).json;
            assert.equal(body.status, 'processing');
            body = (await inProgress(id)).json;
            assert.equal(body.status, outcome);
            assert.match(body.status_message, msg);
            assert.equal(body.profile_asset_url, null);
            assert.equal(body.username_hint, null);
            // It stays there.
            assert.equal((await inProgress(id)).json.status, outcome);
        }
        await h.ctl('POST', '/script', { next: { cameo: [{ outcome: 'failed', status_message: 'Too dark.' }] } });
        const id = (await uploadVideo()).json.id;
        let body;
        do {
            body = (await inProgress(id)).json;
        } while (body.status === 'processing');
        assert.deepEqual([body.status, body.status_message], ['failed', 'Too dark.']);
    });

    it('bad_asset: completed with an avatar URL that answers 404', async () => {
        await h.ctl('POST', '/script', { next: { cameo: [{ outcome: 'bad_asset' }] } });
        const [, body] = await readyCameo();
        assert.match(body.profile_asset_url, /\/media\/missing\/cameo_[0-9a-f]{8}\.webp$/);
        const r = await fetch(body.profile_asset_url);
        assert.equal(r.status, 404);
    });
});
