'use strict';
/*
 * Shared helpers for the fake's own tests (tests/fake-sora/test/*.test.js).
 * Kept outside test/ because `node --test DIR` runs every .js file under a
 * directory named "test".
 */

const { start } = require('../server.js');

const SENTINEL = { 'openai-sentinel-token': 'qZ7rT2mW9xK4pL1' };

/*
 * Start a fake on a free loopback port.  Returns a handle with request
 * helpers; call handle.close() in an after() hook.
 */
async function startFake(options = {}) {
    const srv = await start({ port: 0, ...options });

    /* One HTTP exchange; resolves to {status, headers, json, text, buf}. */
    async function req(method, path, opts = {}) {
        const headers = { ...(opts.headers || {}) };
        if (opts.token) {
            headers.authorization = `Bearer ${opts.token}`;
        }
        let body;
        if (opts.form !== undefined) {
            body = opts.form; // FormData: fetch writes the multipart body
        } else if (opts.raw !== undefined) {
            body = opts.raw;
        } else if (opts.body !== undefined) {
            body = JSON.stringify(opts.body);
            if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
                headers['content-type'] = 'application/json';
            }
        }
        const res = await fetch(srv.url + path, { method, headers, body });
        const buf = Buffer.from(await res.arrayBuffer());
        const text = buf.toString('utf8');
        let json = null;
        try {
            json = JSON.parse(text);
        } catch (e) {
            json = null;
        }
        return { status: res.status, headers: res.headers, json, text, buf };
    }

    /* Control API call that must succeed; returns the JSON body. */
    async function ctl(method, path, body) {
        const r = await req(method, `/__fake${path}`, body === undefined ? {} : { body });
        if (r.status !== 200) {
            throw new Error(`control ${method} ${path} -> ${r.status} ${r.text}`);
        }
        return r.json;
    }

    return {
        srv,
        url: srv.url,
        fake: srv.fake,
        req,
        ctl,
        get: (path, token, opts = {}) => req('GET', path, { ...opts, token }),
        post: (path, token, body, opts = {}) => req('POST', path, { ...opts, token, body }),
        del: (path, token, opts = {}) => req('DELETE', path, { ...opts, token }),
        /* Generation/publish POST with a sentinel header. */
        gen: (path, token, body, opts = {}) => req('POST', path, { ...opts, token, body, headers: { ...SENTINEL, ...(opts.headers || {}) } }),
        account: (opts = {}) => ctl('POST', '/accounts', opts),
        reset: () => ctl('POST', '/reset', {}),
        journal: async (query = '') => (await ctl('GET', `/journal${query}`)).entries,
        close: () => srv.close(),
    };
}

/* A target-style nf/create body (protocol doc E12). */
function videoBody(over = {}) {
    return {
        kind: 'video', prompt: 'a cat surfing', orientation: 'landscape', size: 'small',
        n_frames: 300, model: 'sy_8', inpaint_items: [], ...over,
    };
}

/* A target-style video_gen body (protocol doc E10). */
function imageBody(over = {}) {
    return {
        type: 'image_gen', operation: 'simple_compose', prompt: 'a red fox', width: 360, height: 360,
        n_variants: 1, n_frames: 1, inpaint_items: [], ...over,
    };
}

/* FormData with a file part, like the gateway's uploads. */
function fileForm(fields, file) {
    const form = new FormData();
    if (file) {
        form.append(file.name || 'file', new Blob([file.data], { type: file.type }), file.filename);
    }
    for (const [k, v] of Object.entries(fields || {})) {
        form.append(k, v);
    }
    return form;
}

/* Poll GET `path` until `done(json)` or `max` reads. Returns [reads, lastJson]. */
async function pollUntil(h, path, token, done, max = 50) {
    for (let i = 1; i <= max; i++) {
        const r = await h.get(path, token);
        if (done(r.json, r)) {
            return [i, r.json];
        }
    }
    throw new Error(`condition not met after ${max} reads of ${path}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { startFake, videoBody, imageBody, fileForm, pollUntil, sleep, SENTINEL };
