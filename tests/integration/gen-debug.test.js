'use strict';
// debug_enabled (log level debug): every upstream call is written to the
// error log with method, URL, status, time and bounded bodies, and no
// access, session or refresh token ever reaches the log.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { request, waitFor } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { json, user } = g;

const upstreamLines = (text) => text.split('\n').filter((l) => / upstream #\d+ /.test(l));

test('debug_enabled logs every upstream call with its secrets masked', async () => {
  const ctx = await g.startGenPool({ workers: 1 });
  const { fake, d, H } = ctx;
  try {
    const t = await g.addToken(ctx, {}, { remaining: null });
    const secrets = [t.acc.access_token, t.acc.session_token, t.acc.refresh_token];
    // Debug off: nothing of the kind.
    let s = g.parseStream(await g.chat(d, { model: 'sora-image', stream: true, messages: user('quiet [d1]') }));
    assert.equal(s.error, undefined);
    assert.deepEqual(upstreamLines(d.log()), []);

    let r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ debug_enabled: true }) });
    assert.equal(r.status, 200, r.text);
    const from = d.log().length;
    // A generation with an uploaded image, then ST and RT conversions.
    const png = await g.pngBytes(fake);
    s = g.parseStream(await g.chat(d, { model: 'sora-image', stream: true, messages: user([
      { type: 'text', text: 'loud [d2]' },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }]) }));
    assert.equal(s.error, undefined, JSON.stringify(s.content));
    r = await request(d.base, 'POST', '/api/tokens/st2at', { headers: H, body: json({ st: t.acc.session_token }) });
    assert.equal(r.status, 200, r.text);
    secrets.push(r.json.access_token);
    r = await request(d.base, 'POST', '/api/tokens/rt2at', { headers: H, body: json({ rt: t.acc.refresh_token }) });
    assert.equal(r.status, 200, r.text);
    secrets.push(r.json.access_token, r.json.refresh_token);

    const log = await waitFor(() => {
      const l = d.log().slice(from);
      return / upstream #\d+ < \d+ POST http:\/\/127\.0\.0\.1:\d+\/oauth\/token in \d+ ms/.test(l) ? l : null;
    }, { what: 'the oauth call logged' });
    const lines = upstreamLines(log);
    assert.ok(lines.every((l) => l.includes('[debug]')), lines.join('\n'));
    const base = `http://127.0.0.1:${fake.port}`;
    for (const call of [`POST ${base}/backend/uploads`, `POST ${base}/backend/video_gen`,
      `GET ${base}/backend/v2/recent_tasks`, `GET ${base}/api/auth/session`, `POST ${base}/oauth/token`]) {
      const esc = call.replace(/[.?*+/]/g, (c) => `\\${c}`);
      assert.match(log, new RegExp(`upstream #\\d+ > ${esc}`), `${call} sent`);
      assert.match(log, new RegExp(`upstream #\\d+ < 200 ${esc}\\S* in \\d+ ms`), `${call} answered`);
    }
    // Bodies both ways; the multipart upload as its parts.
    assert.match(log, /upstream #\d+ request body \[1\/1\]: \{"type":"image_gen"/);
    assert.match(log, /upstream #\d+ response body \[1\/\d+\]: \{/);
    assert.match(log, /upstream #\d+ request part 1: name=file filename=image\.png type=image\/png, \d+ bytes/);
    // Headers are shown, their secrets masked.
    assert.match(log, /Authorization: Bearer eyJ\w\.\.\.[\w-]{4}/);
    assert.match(log, /Cookie: \[redacted\]/);
    assert.match(log, /"refresh_token":"rt_\w\.\.\./);
    for (const sec of secrets) {
      assert.ok(typeof sec === 'string' && sec.length > 12);
      assert.equal(log.includes(sec), false, `a secret in the log: ${sec.slice(0, 8)}...`);
      // Not even its JWT payload or signature.
      for (const part of sec.split('.').filter((p) => p.length > 12)) {
        assert.equal(log.includes(part), false, `part of a secret in the log: ${part.slice(0, 8)}...`);
      }
    }

    // Off again: quiet again.
    r = await request(d.base, 'POST', '/api/admin/config', { headers: H, body: json({ debug_enabled: false }) });
    assert.equal(r.status, 200, r.text);
    await new Promise((res) => setTimeout(res, 1200));
    const after = d.log().length;
    s = g.parseStream(await g.chat(d, { model: 'sora-image', stream: true, messages: user('quiet again [d3]') }));
    assert.equal(s.error, undefined);
    assert.deepEqual(upstreamLines(d.log().slice(after)), []);
    assert.deepEqual(d.unexpectedErrors(), []);
  } finally {
    await stopPool(ctx);
  }
});
