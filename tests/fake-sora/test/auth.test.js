'use strict';
/* Auth: Bearer checks on /backend, JWT access tokens, ST -> AT, RT -> AT with rotation. */

const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake } = require('../lib/harness.js');
const { decodeJwt, PROFILE_CLAIM } = require('../server.js');

let h;
before(async () => { h = await startFake(); });
after(() => h.close());
beforeEach(() => h.reset());

describe('backend authorization', () => {
    it('rejects a missing Authorization header with 401 Unauthorized', async () => {
        const r = await h.get('/backend/me');
        assert.equal(r.status, 401);
        assert.match(r.headers.get('content-type'), /^application\/json/);
        assert.equal(r.json.error.message, 'Unauthorized');
        assert.equal(r.json.error.type, 'invalid_request_error');
        assert.equal(r.json.error.code, null);
        assert.ok('param' in r.json.error);
    });

    it('rejects a non-Bearer scheme and an unknown token', async () => {
        const a = await h.account();
        const basic = await h.req('GET', '/backend/me', { headers: { authorization: `Basic ${a.access_token}` } });
        assert.equal(basic.status, 401);
        const unknown = await h.get('/backend/nf/check', 'eyJ.not.known');
        assert.equal(unknown.status, 401);
        assert.equal(unknown.json.error.message, 'Unauthorized');
    });

    it('accepts any header-name and scheme case (invite/accept sends lower-case authorization)', async () => {
        const a = await h.account();
        const r = await h.req('GET', '/backend/me', { headers: { AUTHORIZATION: `bearer ${a.access_token}` } });
        assert.equal(r.status, 200);
        assert.equal(r.json.email, a.email);
    });

    it('answers a revoked AT with 401 token_invalidated on every backend route', async () => {
        const a = await h.account({ revoked: true });
        for (const path of ['/backend/me', '/backend/nf/pending', '/backend/project_y/profile/drafts']) {
            const r = await h.get(path, a.access_token);
            assert.equal(r.status, 401, path);
            assert.equal(r.json.error.code, 'token_invalidated');
            assert.match(r.json.error.message, /invalidated/);
        }
    });

    it('revokes one AT through the control API while a new AT from the ST still works', async () => {
        const a = await h.account();
        await h.ctl('POST', '/accounts/update', { access_token: a.access_token, revoked: true });
        assert.equal((await h.get('/backend/me', a.access_token)).status, 401);
        const s = await h.req('GET', '/api/auth/session', { headers: { cookie: `__Secure-next-auth.session-token=${a.session_token}` } });
        assert.equal((await h.get('/backend/me', s.json.accessToken)).status, 200);
    });

    it('answers an expired AT with 401 token_expired', async () => {
        const a = await h.account({ expired: true });
        const r = await h.get('/backend/billing/subscriptions', a.access_token);
        assert.equal(r.status, 401);
        assert.equal(r.json.error.code, 'token_expired');
        assert.ok(decodeJwt(a.access_token).payload.exp < Date.now() / 1000);
    });

    it('does not require auth on the session, OAuth, media and parse hosts', async () => {
        assert.equal((await h.get('/api/auth/session')).status, 200);
        assert.equal((await h.get('/media/x.png')).status, 200);
        assert.equal((await h.req('POST', '/get-sora-link', { body: {} })).status, 200);
    });
});

describe('JWT access tokens', () => {
    it('are header.payload.signature in base64url with exp and the profile e-mail claim', async () => {
        const a = await h.account({ email: 'jwt.user@example.test' });
        const parts = a.access_token.split('.');
        assert.equal(parts.length, 3);
        for (const p of parts) {
            assert.match(p, /^[A-Za-z0-9_-]+$/);
        }
        const { header, payload } = decodeJwt(a.access_token);
        assert.equal(header.alg, 'RS256');
        assert.equal(header.typ, 'JWT');
        assert.equal(typeof payload.exp, 'number');
        assert.ok(payload.exp > Date.now() / 1000 + 9 * 86400, 'default lifetime is 10 days');
        assert.equal(payload[PROFILE_CLAIM].email, 'jwt.user@example.test');
        assert.equal(payload['https://api.openai.com/auth'].user_id, a.user_id);
        assert.equal(a.access_token_exp, payload.exp);
    });

    it('honours a per-account lifetime and a minted expired token', async () => {
        const a = await h.account({ at_lifetime_s: 3600 });
        const exp = decodeJwt(a.access_token).payload.exp;
        assert.ok(Math.abs(exp - (Date.now() / 1000 + 3600)) < 5);
        const t = await h.ctl('POST', '/tokens', { email: a.email, expired: true });
        assert.ok(t.exp < Date.now() / 1000);
        assert.equal((await h.get('/backend/me', t.access_token)).json.error.code, 'token_expired');
    });
});

describe('ST -> AT (GET /api/auth/session)', () => {
    it('exchanges a known session cookie for a new JWT', async () => {
        const a = await h.account();
        const r = await h.req('GET', '/api/auth/session', {
            headers: { cookie: `other=1; __Secure-next-auth.session-token=${a.session_token}`, accept: 'application/json' },
        });
        assert.equal(r.status, 200);
        assert.equal(r.json.user.email, a.email);
        assert.ok(!Number.isNaN(Date.parse(r.json.expires)));
        assert.notEqual(r.json.accessToken, a.access_token);
        assert.equal(decodeJwt(r.json.accessToken).payload[PROFILE_CLAIM].email, a.email);
        assert.equal((await h.get('/backend/me', r.json.accessToken)).status, 200);
        assert.equal((await h.get('/backend/me', a.access_token)).status, 200, 'the old AT stays valid');
    });

    it('joins NextAuth chunked cookies (.0, .1)', async () => {
        const a = await h.account();
        const st = a.session_token;
        const cut = Math.floor(st.length / 2);
        const r = await h.req('GET', '/api/auth/session', {
            headers: { cookie: `__Secure-next-auth.session-token.0=${st.slice(0, cut)}; __Secure-next-auth.session-token.1=${st.slice(cut)}` },
        });
        assert.equal(r.json.user.email, a.email);
    });

    it('answers an unknown, missing or invalidated ST with 200 {}', async () => {
        assert.deepEqual((await h.req('GET', '/api/auth/session', { headers: { cookie: '__Secure-next-auth.session-token=nope' } })).json, {});
        assert.deepEqual((await h.get('/api/auth/session')).json, {});
        const a = await h.account();
        await h.ctl('POST', '/accounts/update', { email: a.email, invalidate_session: true });
        const r = await h.req('GET', '/api/auth/session', { headers: { cookie: `__Secure-next-auth.session-token=${a.session_token}` } });
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, {});
    });

    it('issues already-expired ATs for an account configured so (token gets disabled path)', async () => {
        const a = await h.account({ at_lifetime_s: -60 });
        const r = await h.req('GET', '/api/auth/session', { headers: { cookie: `__Secure-next-auth.session-token=${a.session_token}` } });
        assert.ok(decodeJwt(r.json.accessToken).payload.exp < Date.now() / 1000);
    });
});

describe('RT -> AT (POST /oauth/token)', () => {
    const grant = (rt, over = {}) => ({
        client_id: 'app_LlGpXReQgckcGGUo2JrYvtJK', grant_type: 'refresh_token',
        redirect_uri: 'com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback', refresh_token: rt, ...over,
    });

    it('returns a new AT and a rotated RT; the old RT then fails with invalid_grant', async () => {
        const a = await h.account();
        const r1 = await h.req('POST', '/oauth/token', { body: grant(a.refresh_token) });
        assert.equal(r1.status, 200);
        assert.equal(r1.json.token_type, 'bearer');
        assert.equal(r1.json.expires_in, 864000);
        assert.match(r1.json.refresh_token, /^rt_/);
        assert.notEqual(r1.json.refresh_token, a.refresh_token);
        assert.equal(decodeJwt(r1.json.access_token).payload[PROFILE_CLAIM].email, a.email);
        assert.equal(decodeJwt(r1.json.id_token).payload.email, a.email);
        assert.equal((await h.get('/backend/me', r1.json.access_token)).status, 200);

        const old = await h.req('POST', '/oauth/token', { body: grant(a.refresh_token) });
        assert.equal(old.status, 401);
        assert.deepEqual(old.json, { error: 'invalid_grant', error_description: 'Refresh token is invalid or expired.' });

        const r2 = await h.req('POST', '/oauth/token', { body: grant(r1.json.refresh_token) });
        assert.equal(r2.status, 200);
        const state = await h.ctl('GET', `/state?email=${a.email}`);
        assert.equal(state.accounts[0].refresh_token, r2.json.refresh_token);
    });

    it('keeps the RT and omits refresh_token when rotation is off', async () => {
        await h.ctl('POST', '/config', { rotate_refresh_tokens: false });
        const a = await h.account();
        const r = await h.req('POST', '/oauth/token', { body: grant(a.refresh_token) });
        assert.equal(r.status, 200);
        assert.equal(r.json.refresh_token, undefined);
        assert.equal((await h.req('POST', '/oauth/token', { body: grant(a.refresh_token) })).status, 200);
    });

    it('does not trim whitespace around the RT, and checks grant_type and client_id', async () => {
        const a = await h.account();
        assert.equal((await h.req('POST', '/oauth/token', { body: grant(` ${a.refresh_token}\n`) })).status, 401);
        const g = await h.req('POST', '/oauth/token', { body: grant(a.refresh_token, { grant_type: 'password' }) });
        assert.equal(g.status, 400);
        assert.equal(g.json.error, 'unsupported_grant_type');
        const c = await h.req('POST', '/oauth/token', { body: grant(a.refresh_token, { client_id: '' }) });
        assert.equal(c.json.error, 'invalid_request');
    });

    it('accepts a form-encoded body too', async () => {
        const a = await h.account();
        const form = new URLSearchParams(grant(a.refresh_token)).toString();
        const r = await h.req('POST', '/oauth/token', { raw: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        assert.equal(r.status, 200);
        assert.ok(r.json.access_token);
    });

    it('journals the exact request body for assertions', async () => {
        const a = await h.account();
        await h.req('POST', '/oauth/token', { body: grant(a.refresh_token) });
        const [e] = await h.journal('?route=POST%20/oauth/token');
        assert.equal(e.body.grant_type, 'refresh_token');
        assert.equal(e.body.redirect_uri, 'com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback');
        assert.equal(e.status, 200);
    });
});
