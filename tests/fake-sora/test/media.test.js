'use strict';
/* Media bytes are real files (PNG, JPEG, WebP, MP4) and downloads honour Range. */

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const zlib = require('node:zlib');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startFake } = require('../lib/harness.js');
const { MEDIA } = require('../server.js');

let h;
before(async () => { h = await startFake(); });
after(() => h.close());

/* Split an ISO-BMFF byte range into boxes: [{type, start, size, body}]. */
function boxes(buf, start = 0, end = buf.length) {
    const out = [];
    let pos = start;
    while (pos < end) {
        const size = buf.readUInt32BE(pos);
        assert.ok(size >= 8 && pos + size <= end, `box at ${pos} has a sane size`);
        out.push({ type: buf.toString('latin1', pos + 4, pos + 8), start: pos, size, body: [pos + 8, pos + size] });
        pos += size;
    }
    assert.equal(pos, end, 'boxes tile their parent exactly');
    return out;
}

function child(buf, parent, type, skip = 0) {
    const found = boxes(buf, parent.body[0] + skip, parent.body[1]).find((b) => b.type === type);
    assert.ok(found, `${parent.type} contains ${type}`);
    return found;
}

describe('media bytes', () => {
    it('PNG: signature, IHDR 16x16 RGB, IDAT inflates to the right size, IEND', () => {
        const b = MEDIA.png;
        assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        assert.equal(b.toString('latin1', 12, 16), 'IHDR');
        assert.deepEqual([b.readUInt32BE(16), b.readUInt32BE(20), b[24], b[25]], [16, 16, 8, 2]);
        const idatLen = b.readUInt32BE(33);
        assert.equal(b.toString('latin1', 37, 41), 'IDAT');
        const raw = zlib.inflateSync(b.subarray(41, 41 + idatLen));
        assert.equal(raw.length, (16 * 3 + 1) * 16);
        assert.equal(b.toString('latin1', b.length - 8, b.length - 4), 'IEND');
    });

    it('JPEG: SOI, SOF0 8x8, EOI', () => {
        const b = MEDIA.jpeg;
        assert.deepEqual([b[0], b[1], b[b.length - 2], b[b.length - 1]], [0xff, 0xd8, 0xff, 0xd9]);
        const sof = b.indexOf(Buffer.from([0xff, 0xc0]));
        assert.ok(sof > 0);
        assert.deepEqual([b.readUInt16BE(sof + 5), b.readUInt16BE(sof + 7)], [8, 8]);
    });

    it('WebP: RIFF/WEBP/VP8L with consistent sizes and 16x16', () => {
        const b = MEDIA.webp;
        assert.equal(b.toString('latin1', 0, 4), 'RIFF');
        assert.equal(b.readUInt32LE(4), b.length - 8);
        assert.equal(b.toString('latin1', 8, 16), 'WEBPVP8L');
        assert.equal(b[20], 0x2f);
        const bits = b.readUInt32LE(21);
        assert.equal((bits & 0x3fff) + 1, 16);
        assert.equal(((bits >>> 14) & 0x3fff) + 1, 16);
    });

    it('MP4: ftyp + moov + mdat, an H.264 track whose sample table points into mdat', () => {
        const b = MEDIA.mp4;
        const top = boxes(b);
        assert.deepEqual(top.map((x) => x.type), ['ftyp', 'moov', 'mdat']);
        assert.equal(b.toString('latin1', 8, 12), 'isom');
        const moov = top[1];
        const mdat = top[2];
        const trak = child(b, moov, 'trak');
        child(b, moov, 'mvhd');
        const mdia = child(b, trak, 'mdia');
        const hdlr = child(b, mdia, 'hdlr');
        assert.equal(b.toString('latin1', hdlr.body[0] + 8, hdlr.body[0] + 12), 'vide');
        const stbl = child(b, child(b, mdia, 'minf'), 'stbl');
        const stsd = child(b, stbl, 'stsd');
        const avc1 = child(b, stsd, 'avc1', 8);
        assert.deepEqual([b.readUInt16BE(avc1.body[0] + 24), b.readUInt16BE(avc1.body[0] + 26)], [16, 16]);
        const avcC = child(b, avc1, 'avcC', 78);
        assert.equal(b[avcC.body[0] + 1], 66, 'Baseline profile');
        const stsz = child(b, stbl, 'stsz');
        const count = b.readUInt32BE(stsz.body[0] + 8);
        assert.equal(count, 30);
        let total = 0;
        for (let i = 0; i < count; i++) {
            total += b.readUInt32BE(stsz.body[0] + 12 + 4 * i);
        }
        const stco = child(b, stbl, 'stco');
        assert.equal(b.readUInt32BE(stco.body[0] + 8), mdat.body[0], 'chunk offset = start of mdat payload');
        assert.equal(total, mdat.size - 8, 'samples fill mdat');
        assert.equal(b[mdat.body[0] + 4] & 0x1f, 5, 'first sample is an IDR slice');
    });

    const ffprobe = spawnSync('ffprobe', ['-version'], { stdio: 'ignore' }).status === 0;
    it('MP4 decodes with ffmpeg when it is installed', { skip: !ffprobe && 'ffmpeg not installed' }, () => {
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fake-sora-')), 'v.mp4');
        fs.writeFileSync(file, MEDIA.mp4);
        const r = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.equal(r.stdout.split('\n').filter((l) => /^0,/.test(l)).length, 30);
        fs.rmSync(path.dirname(file), { recursive: true });
    });
});

describe('GET /media/...', () => {
    it('serves the type named by the extension, with validators', async () => {
        const cases = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', mp4: 'video/mp4' };
        for (const [ext, type] of Object.entries(cases)) {
            const r = await h.req('GET', `/media/any/path/file.${ext}`);
            assert.equal(r.status, 200, ext);
            assert.equal(r.headers.get('content-type'), type);
            assert.equal(r.headers.get('accept-ranges'), 'bytes');
            assert.ok(r.headers.get('etag'));
            assert.equal(Number(r.headers.get('content-length')), r.buf.length);
        }
        assert.equal((await h.req('GET', '/media/file.txt')).status, 404);
    });

    it('answers Range requests with 206 and Content-Range', async () => {
        const total = MEDIA.mp4.length;
        const first = await h.req('GET', '/media/vid/x.mp4', { headers: { range: 'bytes=0-7' } });
        assert.equal(first.status, 206);
        assert.equal(first.headers.get('content-range'), `bytes 0-7/${total}`);
        assert.deepEqual(first.buf, MEDIA.mp4.subarray(0, 8));
        assert.equal(first.buf.toString('latin1', 4, 8), 'ftyp');
        const open = await h.req('GET', '/media/vid/x.mp4', { headers: { range: 'bytes=100-' } });
        assert.deepEqual([open.status, open.buf.length], [206, total - 100]);
        const suffix = await h.req('GET', '/media/vid/x.mp4', { headers: { range: 'bytes=-10' } });
        assert.deepEqual(suffix.buf, MEDIA.mp4.subarray(total - 10));
        const clipped = await h.req('GET', '/media/vid/x.mp4', { headers: { range: `bytes=${total - 2}-${total + 50}` } });
        assert.equal(clipped.headers.get('content-range'), `bytes ${total - 2}-${total - 1}/${total}`);
    });

    it('answers an unsatisfiable range with 416 and ignores multi-range requests', async () => {
        const total = MEDIA.mp4.length;
        const r = await h.req('GET', '/media/vid/x.mp4', { headers: { range: `bytes=${total}-` } });
        assert.equal(r.status, 416);
        assert.equal(r.headers.get('content-range'), `bytes */${total}`);
        const multi = await h.req('GET', '/media/vid/x.mp4', { headers: { range: 'bytes=0-1,4-5' } });
        assert.deepEqual([multi.status, multi.buf.length], [200, total]);
    });

    it('answers HEAD with headers only', async () => {
        const r = await h.req('HEAD', '/media/img/x.png');
        assert.equal(r.status, 200);
        assert.equal(Number(r.headers.get('content-length')), MEDIA.png.length);
        assert.equal(r.buf.length, 0);
    });
});

describe('large bodies and broken transfers', () => {
    const net = require('node:net');

    it('a client that leaves a large body early is counted as aborted', async () => {
        await h.ctl('POST', '/config', { video_bytes: 8 * 1024 * 1024 });
        try {
            const before = (await h.ctl('GET', '/stats')).counters.media;
            const sock = net.connect(h.srv.port, '127.0.0.1');
            let got = 0;
            sock.on('data', (c) => {
                got += c.length;
                if (got > 512 * 1024) {
                    sock.destroy();
                }
            });
            sock.write('GET /media/vid/big.mp4 HTTP/1.1\r\nHost: x\r\n\r\n');
            await new Promise((r) => sock.on('close', r));
            let m;
            for (let i = 0; i < 100; i++) {
                m = (await h.ctl('GET', '/stats')).counters.media;
                if (m.open === 0) {
                    break;
                }
                await new Promise((r) => setTimeout(r, 20));
            }
            assert.equal(m.aborted, before.aborted + 1);
            assert.equal(m.finished, before.finished);
            assert.equal(m.open, 0);
        } finally {
            await h.ctl('POST', '/config', { video_bytes: null });
        }
    });

    it('cut_body: the full Content-Length, half the body, then the connection breaks', async () => {
        await h.ctl('POST', '/arm', { route: 'GET /media/*', cut_body: true });
        const sock = net.connect(h.srv.port, '127.0.0.1');
        const chunks = [];
        sock.on('data', (c) => chunks.push(c));
        sock.write('GET /media/vid/x.mp4 HTTP/1.1\r\nHost: x\r\n\r\n');
        await new Promise((r) => sock.on('close', r));
        const buf = Buffer.concat(chunks);
        const end = buf.indexOf('\r\n\r\n');
        assert.match(buf.subarray(0, end).toString('latin1'), new RegExp(`content-length: ${MEDIA.mp4.length}`, 'i'));
        assert.equal(buf.length - end - 4, MEDIA.mp4.length >> 1);
    });
});
