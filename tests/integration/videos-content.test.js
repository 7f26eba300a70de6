'use strict';
// GET /v1/videos/{id}/content (docs/videos.md "Content"): the video and
// thumbnail variants, from the cache (sendfile, Range) or relayed from
// the upstream as it downloads (no redirect), with the upstream's
// headers, Range and 206; failures before and after the head; a 20 MB
// file through a slow reader in bounded memory; a client that leaves
// mid-relay; the spritesheet Sora has not; expires_at from the cache or
// from the URL's signature; the openai client's downloadContent.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { request, raw, waitFor, AUTH, SANITIZED } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');
const OpenAI = require('openai');

const BIG = 20 * 1024 * 1024;
const TTL = 7200; // the fake's signed URLs: valid two hours from the draft

let ctx;
let fake;
let d;
let client;
let nonce = 0;
const tag = (s) => `${s} [c${++nonce}]`;
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

before(async () => {
  ctx = await g.startGenPool({
    workers: 1,
    // The relays cut short on purpose log a warning; nothing else may.
    allowedErrors: [],
  });
  ({ fake, d } = ctx);
  await g.addToken(ctx, { video_concurrency: 0 }, { remaining: null, max_concurrent: 0 });
  await fakeConfig({ media_url_ttl_s: TTL });
  client = new OpenAI.OpenAI({ apiKey: AUTH.Authorization.slice(7), baseURL: `${d.base}/v1`, maxRetries: 0 });
});
after(() => stopPool(ctx));

const fakeConfig = (c) => g.fakeCall(fake, 'POST', '/__fake/config', c);
const get = (p, headers = {}, opts = {}) => request(d.base, 'GET', p, Object.assign({ headers: Object.assign({}, AUTH, headers), timeout: 60000 }, opts));
const hook = async (q = '') => (await request(d.base, 'GET', `/__test/content-proxy${q}`)).json;
const media = async () => (await g.fakeStats(fake)).counters.media;

async function setCache(enabled) {
  const r = await request(d.base, 'POST', '/api/cache/enabled', { headers: Object.assign({ 'Content-Type': 'application/json' }, ctx.H), body: JSON.stringify({ enabled }) });
  assert.equal(r.status, 200, r.text);
}

// A finished sync video and the fake's draft behind it.
async function video(prompt = tag('a video')) {
  const v = await client.videos.create({ prompt, model: 'sora-video-10s' });
  assert.equal(v.status, 'completed', JSON.stringify(v));
  const st = await g.fakeCall(fake, 'GET', '/__fake/state');
  const task = st.tasks.find((t) => t.prompt === prompt || (t.body && t.body.prompt === prompt));
  assert.ok(task && task.draft, `the fake's task for ${prompt}`);
  return { v, draft: task.draft };
}

// What the fake serves at `url` (bytes and headers), straight.
async function upstream(url, headers = {}) {
  const r = await fetch(url, { headers });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

const seOf = (url) => Math.floor(Date.parse(new URL(url).searchParams.get('se')) / 1000);
const rowParams = (id) => JSON.parse(d.sqlite(`SELECT params FROM tasks WHERE job_id = '${id}'`));

test('uncached: the video is relayed, not redirected, with the upstream bytes and headers; HEAD; expires_at is the URL\'s se', async () => {
  const { v } = await video();
  const url = v.data[0].url;
  assert.match(url, /\/media\/vid\/gen_\w+\.mp4\?se=[^&]+&sp=r&sv=[^&]+&sr=b&sig=/);
  // expires_at: the signature's, in the create answer, retrieve and list.
  const se = seOf(url);
  assert.ok(se > Date.now() / 1000 + TTL - 120 && se <= Date.now() / 1000 + TTL, `se ${se}`);
  assert.equal(v.expires_at, se);
  assert.equal((await client.videos.retrieve(v.id)).expires_at, se);
  const list = await get('/v1/videos?limit=5');
  assert.equal(list.json.data.find((x) => x.id === v.id).expires_at, se);

  const want = await upstream(url);
  assert.equal(want.status, 200);
  const before = await media();
  const r = await get(`/v1/videos/${v.id}/content`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.location, undefined);
  assert.equal(r.headers['content-type'], 'video/mp4');
  assert.equal(r.headers['content-length'], String(want.body.length));
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers.etag, want.headers.get('etag'));
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.deepEqual(r.body, want.body);
  assert.equal((await media()).finished, before.finished + 1, 'one upstream download, whole');
  // HEAD: the head alone, with the length.
  const h = await request(d.base, 'HEAD', `/v1/videos/${v.id}/content`, { headers: AUTH });
  assert.equal(h.status, 200);
  assert.equal(h.headers['content-length'], String(want.body.length));
  assert.equal(h.headers['content-type'], 'video/mp4');
  assert.equal(h.body.length, 0);
  // The official client.
  const sdk = Buffer.from(await (await client.videos.downloadContent(v.id)).arrayBuffer());
  assert.deepEqual(sdk, want.body);
  const hk = await hook();
  assert.equal(hk.active, 0);
  assert.equal(hk.upstream_inflight, 0);
});

test('uncached Range: forwarded upstream, 206 with the slice and Content-Range relayed; 416 relayed', async () => {
  const { v } = await video();
  const want = await upstream(v.data[0].url);
  const total = want.body.length;
  const since = await g.lastSeq(fake);
  const r = await get(`/v1/videos/${v.id}/content`, { Range: 'bytes=1-3' });
  assert.equal(r.status, 206, r.text);
  assert.equal(r.headers['content-range'], `bytes 1-3/${total}`);
  assert.equal(r.headers['content-length'], '3');
  assert.deepEqual(r.body, want.body.subarray(1, 4));
  const seen = (await fake.journal(`?since=${since}`)).entries.filter((e) => e.path.startsWith('/media/vid/'));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].headers.range, 'bytes=1-3');
  const tail = await get(`/v1/videos/${v.id}/content`, { Range: 'bytes=-5' });
  assert.equal(tail.status, 206);
  assert.equal(tail.headers['content-range'], `bytes ${total - 5}-${total - 1}/${total}`);
  assert.deepEqual(tail.body, want.body.subarray(total - 5));
  const bad = await get(`/v1/videos/${v.id}/content`, { Range: `bytes=${total + 10}-` });
  assert.equal(bad.status, 416, bad.text);
  assert.equal(bad.headers['content-range'], `bytes */${total}`);
  assert.equal(bad.json.error.code, 'range_not_satisfiable');
});

test('uncached, redirected upstream: followed, and the final answer\'s head is relayed', async () => {
  const { v, draft } = await video();
  const want = await upstream(v.data[0].url);
  const total = want.body.length;
  // The CDN sends the client elsewhere first (the 302's own body is an error envelope).
  await fake.arm({ route: `GET /media/vid/${draft.id}.mp4`, status: 302, headers: { Location: `/media/vid/${draft.id}-moved.mp4` } });
  const since = await g.lastSeq(fake);
  const r = await get(`/v1/videos/${v.id}/content`, { Range: 'bytes=2-9' });
  assert.equal(r.status, 206, r.text);
  assert.equal(r.headers['content-range'], `bytes 2-9/${total}`);
  assert.equal(r.headers['content-type'], 'video/mp4');
  assert.deepEqual(r.body, want.body.subarray(2, 10));
  const seen = (await fake.journal(`?since=${since}`)).entries.filter((e) => e.path.startsWith('/media/vid/'));
  assert.deepEqual(seen.map((e) => [e.path, e.headers.range]), [
    [`/media/vid/${draft.id}.mp4`, 'bytes=2-9'], [`/media/vid/${draft.id}-moved.mp4`, 'bytes=2-9']]);
});

test('uncached thumbnail: relayed as image/jpeg, the fake\'s bytes; the openai client\'s variant', async () => {
  const { v, draft } = await video();
  const p = rowParams(v.id);
  assert.match(p.thumbnail_url, new RegExp(`/media/thumb/${draft.id}\\.jpg\\?se=`));
  const want = await upstream(p.thumbnail_url);
  assert.equal(want.headers.get('content-type'), 'image/jpeg');
  const r = await get(`/v1/videos/${v.id}/content?variant=thumbnail`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['content-type'], 'image/jpeg');
  assert.equal(r.headers['content-length'], String(want.body.length));
  assert.deepEqual(r.body, want.body);
  assert.deepEqual(r.body.subarray(0, 3), Buffer.from([0xff, 0xd8, 0xff]));
  const sdk = await client.videos.downloadContent(v.id, { variant: 'thumbnail' });
  assert.equal(sdk.headers.get('content-type'), 'image/jpeg');
  assert.deepEqual(Buffer.from(await sdk.arrayBuffer()), want.body);
  // The video variant is still the video.
  assert.equal((await get(`/v1/videos/${v.id}/content?variant=video`)).headers['content-type'], 'video/mp4');
});

test('cached: video and thumbnail from the cache (Range, validators), expires_at = completed_at + cache_timeout; delete removes both files', async () => {
  await setCache(true);
  try {
    const { v, draft } = await video();
    const url = v.data[0].url;
    assert.match(url, /\/tmp\/[A-Za-z0-9_-]+\.mp4$/);
    assert.equal(v.expires_at, v.completed_at + 600);
    assert.equal((await client.videos.retrieve(v.id)).expires_at, v.completed_at + 600);
    const thumb = rowParams(v.id).thumbnail_url;
    assert.match(thumb, /\/tmp\/[A-Za-z0-9_-]+\.jpg$/);
    const cache = path.join(d.dir, 'cache');
    const files = [path.basename(url), path.basename(thumb)].map((n) => path.join(cache, n));
    assert.ok(files.every((f) => fs.existsSync(f)), 'both files cached');
    const wantVideo = await upstream(`${fake.url}/media/vid/${draft.id}.mp4`);
    const wantThumb = await upstream(`${fake.url}/media/thumb/${draft.id}.jpg`);
    const before = await hook();
    const r = await get(`/v1/videos/${v.id}/content`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, wantVideo.body);
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.ok(r.headers.etag && r.headers['last-modified'], 'validators');
    const again = await get(`/v1/videos/${v.id}/content`, { 'If-None-Match': r.headers.etag });
    assert.equal(again.status, 304);
    const part = await get(`/v1/videos/${v.id}/content`, { Range: 'bytes=4-11' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 4-11/${wantVideo.body.length}`);
    assert.deepEqual(part.body, wantVideo.body.subarray(4, 12));
    const t = await get(`/v1/videos/${v.id}/content?variant=thumbnail`);
    assert.equal(t.status, 200);
    assert.equal(t.headers['content-type'], 'image/jpeg');
    assert.deepEqual(t.body, wantThumb.body);
    const sdk = await client.videos.downloadContent(v.id, { variant: 'thumbnail' });
    assert.deepEqual(Buffer.from(await sdk.arrayBuffer()), wantThumb.body);
    assert.equal((await hook()).started, before.started, 'nothing was relayed from the upstream');
    // Delete: the row and both files.
    assert.equal((await client.videos.delete(v.id)).deleted, true);
    assert.ok(files.every((f) => !fs.existsSync(f)), 'both files removed');
  } finally {
    await setCache(false);
  }
});

test('cached files expire together: the sweep removes the thumbnail with the video', async () => {
  await setCache(true);
  let v;
  try {
    ({ v } = await video());
  } finally {
    await setCache(false);
  }
  const cache = path.join(d.dir, 'cache');
  const files = [v.data[0].url, rowParams(v.id).thumbnail_url].map((u) => path.join(cache, path.basename(u)));
  const t = Date.now() / 1000 - 3600; // older than cache_timeout (600 s)
  for (const f of files) fs.utimesSync(f, t, t);
  await request(d.base, 'POST', '/__test/sweep');
  await waitFor(() => files.every((f) => !fs.existsSync(f)), { what: 'both cached files swept' });
  const r = await get(`/v1/videos/${v.id}/content?variant=thumbnail`);
  assert.equal(r.status, 404);
  assert.equal((await get(`/v1/videos/${v.id}/content`)).status, 404);
});

test('variants: spritesheet is 404 variant_not_available, a bad one 400; not ready 404; unknown id 404', async () => {
  const { v } = await video();
  const s = await get(`/v1/videos/${v.id}/content?variant=spritesheet`);
  assert.equal(s.status, 404, s.text);
  assert.deepEqual(Object.keys(s.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(s.json.error.code, 'variant_not_available');
  assert.equal(s.json.error.param, 'variant');
  assert.equal(s.json.error.type, 'invalid_request_error');
  assert.match(s.json.error.message, /no spritesheet/);
  await assert.rejects(client.videos.downloadContent(v.id, { variant: 'spritesheet' }), (e) => e.status === 404 && e.error.code === 'variant_not_available');
  for (const bad of ['poster', 'VIDEO', '']) {
    const b = await get(`/v1/videos/${v.id}/content?variant=${bad}`);
    assert.equal(b.status, 400, `${bad}: ${b.text}`);
    assert.equal(b.json.error.param, 'variant');
  }
  const running = await client.videos.create({ prompt: tag('#stall not yet'), model: 'sora-2' });
  for (const variant of ['video', 'thumbnail', 'spritesheet']) {
    const r = await get(`/v1/videos/${running.id}/content?variant=${variant}`);
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'video_not_ready');
  }
  const none = await get('/v1/videos/job_000000000000000000000000/content?variant=spritesheet');
  assert.equal(none.status, 404);
  assert.equal(none.json.error.code, 'not_found');
});

test('upstream failure before the head: 502 in the envelope (error status, dropped connection, expired signature)', async () => {
  const { v } = await video();
  await fake.arm({ route: 'GET /media/*', status: 500 });
  let r = await get(`/v1/videos/${v.id}/content`);
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.type, 'upstream_error');
  assert.equal(r.json.error.code, 'content_unavailable');
  assert.match(r.json.error.message, /HTTP 500/);
  // Twice: curl opens a fresh connection once when a reused one dies
  // before any answer, as it should; that one is dropped too.
  await fake.arm({ route: 'GET /media/*', drop: true, times: 2 });
  r = await get(`/v1/videos/${v.id}/content`);
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.code, 'content_unavailable');
  await g.disarm(fake);
  // A signature already past: the fake answers 403, as Azure does.
  await fakeConfig({ media_url_ttl_s: -60 });
  let old;
  try {
    ({ v: old } = await video());
  } finally {
    await fakeConfig({ media_url_ttl_s: TTL });
  }
  assert.ok(old.expires_at < Date.now() / 1000, 'expires_at tells it has expired');
  r = await get(`/v1/videos/${old.id}/content?variant=thumbnail`);
  assert.equal(r.status, 502, r.text);
  assert.match(r.json.error.message, /HTTP 403 for the thumbnail/);
  assert.equal((await hook()).active, 0);
});

// Splits a raw HTTP/1.1 answer into its head fields and body bytes.
function splitAnswer(buf) {
  const end = buf.indexOf('\r\n\r\n');
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(lines[0].split(' ')[1]), headers, body: buf.subarray(end + 4) };
}

test('upstream failure after the head: the connection closes short of Content-Length', async () => {
  const { v } = await video();
  const total = (await upstream(v.data[0].url)).body.length;
  await fake.arm({ route: 'GET /media/*', cut_body: true });
  const before = await hook();
  const res = await raw(d.port, `GET /v1/videos/${v.id}/content HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH.Authorization}\r\n\r\n`, { timeout: 10000 });
  assert.notEqual(res.why, 'timeout', 'the gateway closed the connection');
  const a = splitAnswer(Buffer.from(res.data, 'latin1'));
  assert.equal(a.status, 200);
  assert.equal(a.headers['content-length'], String(total));
  assert.ok(a.body.length < total, `${a.body.length} of ${total} bytes`);
  const after_ = await hook();
  assert.equal(after_.short_ends, before.short_ends + 1);
  assert.equal(after_.active, 0);
  await waitFor(() => d.log().includes(`relaying the video ended after ${a.body.length} of ${total} bytes`), { what: 'the warning' });
});

// Resident memory of the one worker, in kB.
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

test('a 20 MB video through a slow reader: the download pauses, memory stays bounded, the bytes are whole', async () => {
  await fakeConfig({ video_bytes: BIG });
  try {
    const { v } = await video();
    const want = await upstream(v.data[0].url);
    assert.equal(want.body.length, BIG);
    const [worker] = d.workers();
    await hook('?reset=1');
    const before = await hook();
    const rss0 = rssKb(worker);
    let rssMax = rss0;
    // A reader that takes nothing until the gateway had to pause, then
    // reads in small sips with pauses in between.
    const sock = net.connect(d.port, '127.0.0.1');
    const chunks = [];
    sock.pause();
    sock.on('data', (c) => {
      chunks.push(c);
      sock.pause();
      setTimeout(() => sock.resume(), 1);
    });
    const closed = new Promise((resolve) => sock.on('end', resolve));
    sock.write(`GET /v1/videos/${v.id}/content HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: ${AUTH.Authorization}\r\n\r\n`);
    await waitFor(async () => (await hook()).pauses > before.pauses, { what: 'the download paused for its reader', timeout: 20000 });
    const paused = await hook();
    assert.equal(paused.active, 1);
    rssMax = Math.max(rssMax, rssKb(worker));
    sock.resume();
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssKb(worker)); }, 20);
    await closed;
    clearInterval(sampler);
    const a = splitAnswer(Buffer.concat(chunks));
    assert.equal(a.status, 200);
    assert.equal(a.headers['content-length'], String(BIG));
    assert.equal(a.body.length, BIG);
    assert.equal(sha(a.body), sha(want.body));
    const done = await hook();
    assert.equal(done.completed, before.completed + 1);
    assert.equal(done.active, 0);
    assert.ok(done.pauses > before.pauses);
    // What one relay ever queued for its client: the high mark plus one
    // chunk (libcurl hands over at most 16 KiB at a time).
    assert.ok(done.peak_queued <= done.high_water + 16384, `peak ${done.peak_queued}`);
    assert.ok(done.peak_queued >= done.high_water, `the queue reached the high mark (${done.peak_queued})`);
    // A sanitizer build keeps freed memory in quarantine: RSS says nothing there.
    if (!SANITIZED) {
      assert.ok(rssMax - rss0 < 8 * 1024, `worker RSS grew by ${rssMax - rss0} kB for a ${BIG >> 20} MB file`);
    }
  } finally {
    await fakeConfig({ video_bytes: null });
  }
});

test('a client that leaves mid-relay: the upstream download is aborted, nothing stays behind', async () => {
  await fakeConfig({ video_bytes: BIG });
  try {
    const { v } = await video();
    const before = await hook();
    const m0 = await media();
    const sock = net.connect(d.port, '127.0.0.1');
    let got = 0;
    const gone = new Promise((resolve) => sock.on('close', resolve));
    sock.on('data', (c) => {
      got += c.length;
      if (got > 1024 * 1024) sock.destroy();
    });
    sock.write(`GET /v1/videos/${v.id}/content HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH.Authorization}\r\n\r\n`);
    await gone;
    await waitFor(async () => (await hook()).left === before.left + 1, { what: 'the relay saw its client leave' });
    await waitFor(async () => (await media()).aborted === m0.aborted + 1, { what: 'the fake saw its download cut off' });
    // The aborted transfer's handle leaves curl's multi on the loop's
    // next turn: wait for it rather than read it at once.
    const h = await waitFor(async () => {
      const x = await hook();
      return x.active === 0 && x.upstream_inflight === 0 ? x : null;
    }, { what: 'no relay and no upstream transfer left' });
    assert.equal(h.completed, before.completed);
    assert.equal((await media()).open, 0);
    // The worker serves on.
    assert.equal((await get(`/v1/videos/${v.id}`)).status, 200);
  } finally {
    await fakeConfig({ video_bytes: null });
  }
});

test('without a signature expires_at is null; a video made before thumbnails has no thumbnail variant', async () => {
  await fakeConfig({ media_url_ttl_s: null });
  let v;
  try {
    ({ v } = await video());
  } finally {
    await fakeConfig({ media_url_ttl_s: TTL });
  }
  assert.equal(new URL(v.data[0].url).search, '');
  assert.equal(v.expires_at, null);
  assert.equal((await client.videos.retrieve(v.id)).expires_at, null);
  // A row written before thumbnails were kept.
  const p = rowParams(v.id);
  delete p.thumbnail_url;
  d.sqlite(`UPDATE tasks SET params = '${JSON.stringify(p)}' WHERE job_id = '${v.id}'`);
  // Read from that row, not from the live job table's slot of the job
  // (a restart would have rebuilt the slot from the row).
  const agent = new (require('node:http').Agent)({ keepAlive: true, maxSockets: 1 });
  await request(d.base, 'GET', '/__test/jobtab?bypass=1', { agent });
  const r = await get(`/v1/videos/${v.id}/content?variant=thumbnail`, {}, { agent });
  agent.destroy();
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'variant_not_available');
  assert.equal((await get(`/v1/videos/${v.id}/content`)).status, 200);
});

test('debug log of a relay: the URL\'s signature is masked', async () => {
  const { v } = await video();
  const sig = new URL(v.data[0].url).searchParams.get('sig');
  assert.ok(sig.length > 20);
  const cfg = (on) => request(d.base, 'POST', '/api/admin/config', { headers: Object.assign({ 'Content-Type': 'application/json' }, ctx.H), body: JSON.stringify({ debug_enabled: on }) });
  assert.equal((await cfg(true)).status, 200);
  try {
    assert.equal((await get(`/v1/videos/${v.id}/content`)).status, 200);
  } finally {
    assert.equal((await cfg(false)).status, 200);
  }
  const lines = d.log().split('\n').filter((l) => /upstream #\d+ > GET .*\/media\/vid\//.test(l));
  assert.ok(lines.length >= 1, 'the relay\'s call is logged');
  const line = lines[lines.length - 1];
  assert.match(line, /&sig=[^&\s]{4}\.\.\.[^&\s]{4}/);
  for (const form of [sig, encodeURIComponent(sig)]) assert.equal(d.log().includes(form), false, 'the signature is not in the log');
});
