#!/usr/bin/env node
'use strict';
/*
 * Fake Sora upstream for sora2api tests.
 *
 * One standalone Node.js (>= 20) HTTP server, standard library only, that plays
 * every host the gateway talks to, all on one loopback port:
 *
 *   /backend/...                 the Sora consumer backend (sora.chatgpt.com/backend)
 *   /api/auth/session            NextAuth session endpoint (ST -> AT)
 *   /oauth/token                 OAuth token endpoint (RT -> AT, RT rotation)
 *   /backend-api/sentinel/req    sentinel challenge (later client)
 *   /media/...                   media CDN (tiny but real PNG, JPEG, WebP, MP4)
 *   /MP4/{post_id}.mp4           third-party watermark-free CDN
 *   /get-sora-link               custom watermark-free parse server
 *   /__fake/...                  control API for tests (no auth)
 *
 * The protocol it reproduces is described in shared/docs/sora-upstream-protocol.md;
 * section 8 of that document is the plan this file follows.  README.md beside this
 * file documents the control API and the default scripts.
 *
 * Usage:  node tests/fake-sora/server.js --port 0
 *         -> prints exactly one line "listening on 127.0.0.1:PORT" on stdout.
 * Module: require('./server.js').start({port: 0}) -> Promise<{port, url, close(), fake}>
 *
 * Performance notes: every hot path (auth, nf/create, pending, drafts,
 * recent_tasks, in_progress) does O(1) work or work proportional to the objects
 * of the calling account only.  The journal is a bounded ring; counters are
 * never dropped.  A benchmark drives ~10,000 concurrent tasks through this.
 */

const http = require('node:http');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const fs = require('node:fs');

/* ======================================================================
 * Small utilities: ids, randomness, encoding
 * ==================================================================== */

// Random bytes come from a refilled pool: ids are minted on hot paths and one
// getrandom() call per 4 KiB is cheaper than one per id.
let randPool = Buffer.alloc(0);
let randPos = 0;
function randBytes(n) {
    if (randPos + n > randPool.length) {
        randPool = crypto.randomBytes(Math.max(4096, n));
        randPos = 0;
    }
    const out = randPool.subarray(randPos, randPos + n);
    randPos += n;
    return out;
}

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER_ALNUM = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/* Lower-case ULID (26 chars: 10 of time, 16 random), the format of task_ and gen_ ids. */
function ulid(now = Date.now()) {
    let t = now;
    let time = '';
    for (let i = 0; i < 10; i++) {
        time = CROCKFORD[t % 32] + time;
        t = Math.floor(t / 32);
    }
    const rnd = randBytes(16);
    let r = '';
    for (let i = 0; i < 16; i++) {
        r += CROCKFORD[rnd[i] & 31];
    }
    return time + r;
}

function hex(nBytes) {
    return Buffer.from(randBytes(nBytes)).toString('hex');
}

function randomFrom(alphabet, n) {
    const rnd = randBytes(n);
    let s = '';
    for (let i = 0; i < n; i++) {
        s += alphabet[rnd[i] % alphabet.length];
    }
    return s;
}

function uuid4() {
    return crypto.randomUUID();
}

/* Deterministic 32-hex id derived from a label, for seeded public data. */
function stableHex(label, len = 32) {
    return crypto.createHash('sha256').update(label).digest('hex').slice(0, len);
}

function sha256hex(buf) {
    return crypto.createHash('sha256').update(buf).digest('hex');
}

function b64url(s) {
    return Buffer.from(s).toString('base64url');
}

function nowSec() {
    return Date.now() / 1000;
}

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function clone(v) {
    return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

function round2(x) {
    return Math.round(x * 100) / 100;
}

/* ======================================================================
 * JWT access tokens.  Structurally valid, signature never checked by anyone
 * (the gateway decodes without verification, protocol doc section 4 "AT format").
 * ==================================================================== */

const JWT_HEADER = b64url(JSON.stringify({ alg: 'RS256', kid: 'fake-sora-1', typ: 'JWT' }));
const JWT_KEY = 'fake-sora-signing-key-not-a-secret';
const PROFILE_CLAIM = 'https://api.openai.com/profile';
const AUTH_CLAIM = 'https://api.openai.com/auth';
const DEFAULT_CLIENT_ID = 'app_LlGpXReQgckcGGUo2JrYvtJK';

function makeJwt(payload) {
    const body = b64url(JSON.stringify(payload));
    const sig = crypto.createHmac('sha256', JWT_KEY).update(JWT_HEADER + '.' + body).digest('base64url');
    return JWT_HEADER + '.' + body + '.' + sig;
}

/* Decode a JWT without checking it.  Returns {header, payload} or null. */
function decodeJwt(token) {
    if (typeof token !== 'string') {
        return null;
    }
    const parts = token.split('.');
    if (parts.length !== 3) {
        return null;
    }
    try {
        return {
            header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
            payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
        };
    } catch (e) {
        return null;
    }
}

/* ======================================================================
 * Media bytes.  Everything is generated at load time by small encoders so the
 * files are real: a PNG any decoder reads, a baseline JPEG, a lossless WebP and
 * an MP4 with a decodable H.264 stream (I_PCM key frame + skipped P frames).
 * ==================================================================== */

const CRC_TABLE = (() => {
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) {
            c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        }
        t[n] = c >>> 0;
    }
    return t;
})();

function crc32(buf) {
    let c = 0xffffffff;
    for (let i = 0; i < buf.length; i++) {
        c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    }
    return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
}

/* RGB PNG of w x h with a diagonal gradient (so it is visibly "an image"). */
function makePng(w, h) {
    const raw = Buffer.alloc((w * 3 + 1) * h);
    for (let y = 0; y < h; y++) {
        const row = y * (w * 3 + 1);
        raw[row] = 0; // filter type None
        for (let x = 0; x < w; x++) {
            const o = row + 1 + x * 3;
            raw[o] = Math.floor((255 * x) / Math.max(1, w - 1));
            raw[o + 1] = Math.floor((255 * y) / Math.max(1, h - 1));
            raw[o + 2] = 160;
        }
    }
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type RGB
    ihdr[10] = 0;
    ihdr[11] = 0;
    ihdr[12] = 0;
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk('IHDR', ihdr),
        pngChunk('IDAT', zlib.deflateSync(raw)),
        pngChunk('IEND', Buffer.alloc(0)),
    ]);
}

/*
 * 8x8 mid-grey baseline JPEG.  One component, DC-only: both Huffman tables
 * hold a single 2-bit code ("00"), so the entropy-coded scan is DC category 0
 * followed by end-of-block, i.e. the four bits 0000 padded with ones (0x0F).
 */
function makeJpeg() {
    const seg = (marker, payload) => {
        const h = Buffer.alloc(4);
        h.writeUInt16BE(0xff00 | marker, 0);
        h.writeUInt16BE(payload.length + 2, 2);
        return Buffer.concat([h, payload]);
    };
    const dqt = Buffer.concat([Buffer.from([0x00]), Buffer.alloc(64, 1)]);
    const sof = Buffer.from([8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    const counts = Buffer.alloc(16);
    counts[1] = 1; // one code of length 2
    const dht = Buffer.concat([
        Buffer.from([0x00]), counts, Buffer.from([0x00]), // DC table 0: symbol "category 0"
        Buffer.from([0x10]), counts, Buffer.from([0x00]), // AC table 0: symbol EOB
    ]);
    const sos = Buffer.from([1, 1, 0x00, 0, 63, 0]);
    return Buffer.concat([
        Buffer.from([0xff, 0xd8]),
        seg(0xdb, dqt),
        seg(0xc0, sof),
        seg(0xc4, dht),
        seg(0xda, sos),
        Buffer.from([0x0f]),
        Buffer.from([0xff, 0xd9]),
    ]);
}

/*
 * Lossless WebP (VP8L) of one solid colour.  Each of the five prefix codes is a
 * "simple" code with a single symbol, which has length zero, so the pixel data
 * itself takes no bits at all.
 */
function makeWebp(w, h, rgba) {
    const bytes = [];
    let acc = 0;
    let n = 0;
    const bits = (v, count) => { // VP8L packs bits LSB first
        for (let i = 0; i < count; i++) {
            acc |= ((v >>> i) & 1) << n;
            if (++n === 8) {
                bytes.push(acc);
                acc = 0;
                n = 0;
            }
        }
    };
    const [r, g, b, a] = rgba;
    bits(0x2f, 8); // signature
    bits(w - 1, 14);
    bits(h - 1, 14);
    bits(a === 255 ? 0 : 1, 1); // alpha_is_used hint
    bits(0, 3); // version
    bits(0, 1); // no transform
    bits(0, 1); // no colour cache
    bits(0, 1); // no meta prefix codes
    for (const sym of [g, r, b, a]) { // green, red, blue, alpha
        bits(1, 1); // simple code
        bits(0, 1); // one symbol
        bits(1, 1); // 8-bit symbol
        bits(sym, 8);
    }
    bits(1, 1); // distance code: simple, one 1-bit symbol 0
    bits(0, 1);
    bits(0, 1);
    bits(0, 1);
    if (n) {
        bytes.push(acc);
    }
    let data = Buffer.from(bytes);
    const chunkLen = data.length;
    if (chunkLen & 1) {
        data = Buffer.concat([data, Buffer.alloc(1)]);
    }
    const head = Buffer.alloc(20);
    head.write('RIFF', 0, 'latin1');
    head.writeUInt32LE(4 + 8 + data.length, 4);
    head.write('WEBP', 8, 'latin1');
    head.write('VP8L', 12, 'latin1');
    head.writeUInt32LE(chunkLen, 16);
    return Buffer.concat([head, data]);
}

/* MSB-first bit writer with Exp-Golomb codes, for H.264 parameter sets and slices. */
class BitWriter {
    constructor() {
        this.bytes = [];
        this.cur = 0;
        this.n = 0;
    }

    bit(b) {
        this.cur = (this.cur << 1) | (b & 1);
        if (++this.n === 8) {
            this.bytes.push(this.cur);
            this.cur = 0;
            this.n = 0;
        }
    }

    bits(v, count) {
        for (let i = count - 1; i >= 0; i--) {
            this.bit((v >>> i) & 1);
        }
    }

    ue(v) {
        const x = v + 1;
        const len = 32 - Math.clz32(x);
        this.bits(0, len - 1);
        this.bits(x, len);
    }

    se(v) {
        this.ue(v <= 0 ? -2 * v : 2 * v - 1);
    }

    alignZero() {
        while (this.n) {
            this.bit(0);
        }
    }

    trailing() {
        this.bit(1);
        this.alignZero();
    }

    buffer() {
        return Buffer.from(this.bytes);
    }
}

/* Wrap an RBSP as a NAL unit, inserting emulation-prevention bytes. */
function nalUnit(headerByte, rbsp) {
    const out = [headerByte];
    let zeros = 0;
    for (const b of rbsp) {
        if (zeros >= 2 && b <= 3) {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = b === 0 ? zeros + 1 : 0;
    }
    return Buffer.from(out);
}

function mp4Box(type, ...payloads) {
    const body = Buffer.concat(payloads);
    const h = Buffer.alloc(8);
    h.writeUInt32BE(8 + body.length, 0);
    h.write(type, 4, 'latin1');
    return Buffer.concat([h, body]);
}

function mp4FullBox(type, version, flags, ...payloads) {
    const vf = Buffer.alloc(4);
    vf.writeUInt32BE(((version << 24) | flags) >>> 0, 0);
    return mp4Box(type, vf, ...payloads);
}

function u32(...vals) {
    const b = Buffer.alloc(4 * vals.length);
    vals.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
    return b;
}

function u16(...vals) {
    const b = Buffer.alloc(2 * vals.length);
    vals.forEach((v, i) => b.writeUInt16BE(v & 0xffff, 2 * i));
    return b;
}

/*
 * A 16x16, 30-frame (1 s at 30 fps) H.264 Constrained Baseline MP4.
 * Frame 1 is an IDR picture holding one I_PCM macroblock (raw samples, no
 * transform needed); frames 2..30 are P pictures whose only macroblock is
 * skipped.  Boxes: ftyp, moov (mvhd, trak/tkhd/mdia/...), mdat (fast-start).
 */
function makeMp4() {
    const FRAMES = 30;
    const sps = new BitWriter();
    sps.bits(66, 8); // profile_idc: Baseline
    sps.bits(0xc0, 8); // constraint_set0/1 (Constrained Baseline)
    sps.bits(10, 8); // level_idc 1.0
    sps.ue(0); // seq_parameter_set_id
    sps.ue(0); // log2_max_frame_num_minus4 -> frame_num has 4 bits
    sps.ue(2); // pic_order_cnt_type 2 (output order = decode order)
    sps.ue(1); // max_num_ref_frames
    sps.bit(0); // gaps_in_frame_num_value_allowed_flag
    sps.ue(0); // pic_width_in_mbs_minus1
    sps.ue(0); // pic_height_in_map_units_minus1
    sps.bit(1); // frame_mbs_only_flag
    sps.bit(1); // direct_8x8_inference_flag
    sps.bit(0); // frame_cropping_flag
    sps.bit(0); // vui_parameters_present_flag
    sps.trailing();
    const spsNal = nalUnit(0x67, sps.buffer());

    const pps = new BitWriter();
    pps.ue(0); // pic_parameter_set_id
    pps.ue(0); // seq_parameter_set_id
    pps.bit(0); // entropy_coding_mode_flag: CAVLC
    pps.bit(0); // bottom_field_pic_order_in_frame_present_flag
    pps.ue(0); // num_slice_groups_minus1
    pps.ue(0); // num_ref_idx_l0_default_active_minus1
    pps.ue(0); // num_ref_idx_l1_default_active_minus1
    pps.bit(0); // weighted_pred_flag
    pps.bits(0, 2); // weighted_bipred_idc
    pps.se(0); // pic_init_qp_minus26
    pps.se(0); // pic_init_qs_minus26
    pps.se(0); // chroma_qp_index_offset
    pps.bit(1); // deblocking_filter_control_present_flag
    pps.bit(0); // constrained_intra_pred_flag
    pps.bit(0); // redundant_pic_cnt_present_flag
    pps.trailing();
    const ppsNal = nalUnit(0x68, pps.buffer());

    const idr = new BitWriter();
    idr.ue(0); // first_mb_in_slice
    idr.ue(7); // slice_type: I (all slices)
    idr.ue(0); // pic_parameter_set_id
    idr.bits(0, 4); // frame_num
    idr.ue(0); // idr_pic_id
    idr.bit(0); // no_output_of_prior_pics_flag
    idr.bit(0); // long_term_reference_flag
    idr.se(0); // slice_qp_delta
    idr.ue(1); // disable_deblocking_filter_idc
    idr.ue(25); // mb_type: I_PCM
    idr.alignZero(); // pcm_alignment_zero_bit
    for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
            idr.bits(40 + (x + y) * 5, 8); // luma gradient, never 0
        }
    }
    for (let i = 0; i < 64; i++) {
        idr.bits(96, 8); // Cb
    }
    for (let i = 0; i < 64; i++) {
        idr.bits(200, 8); // Cr
    }
    idr.trailing();
    const samples = [nalUnit(0x65, idr.buffer())];

    for (let f = 1; f < FRAMES; f++) {
        const p = new BitWriter();
        p.ue(0); // first_mb_in_slice
        p.ue(5); // slice_type: P (all slices)
        p.ue(0); // pic_parameter_set_id
        p.bits(f % 16, 4); // frame_num
        p.bit(0); // num_ref_idx_active_override_flag
        p.bit(0); // ref_pic_list_modification_flag_l0
        p.bit(0); // adaptive_ref_pic_marking_mode_flag
        p.se(0); // slice_qp_delta
        p.ue(1); // disable_deblocking_filter_idc
        p.ue(1); // mb_skip_run: the only macroblock is skipped
        p.trailing();
        samples.push(nalUnit(0x41, p.buffer()));
    }
    // MP4 samples carry NAL units with 4-byte big-endian length prefixes.
    const sampleBufs = samples.map((s) => Buffer.concat([u32(s.length), s]));

    const matrix = u32(0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000);
    const compressor = Buffer.alloc(32);
    compressor[0] = 9;
    compressor.write('fake-sora', 1, 'latin1');
    const avcC = mp4Box('avcC', Buffer.from([1, spsNal[1], spsNal[2], spsNal[3], 0xff, 0xe1]),
        u16(spsNal.length), spsNal, Buffer.from([1]), u16(ppsNal.length), ppsNal);
    const avc1 = mp4Box('avc1', Buffer.alloc(6), u16(1), Buffer.alloc(16), u16(16, 16),
        u32(0x00480000, 0x00480000, 0), u16(1), compressor, u16(0x0018, 0xffff), avcC);

    const buildMoov = (chunkOffset) => mp4Box('moov',
        mp4FullBox('mvhd', 0, 0, u32(0, 0, 1000, 1000, 0x00010000), u16(0x0100, 0), Buffer.alloc(8),
            matrix, Buffer.alloc(24), u32(2)),
        mp4Box('trak',
            mp4FullBox('tkhd', 0, 3, u32(0, 0, 1, 0, 1000), Buffer.alloc(8), u16(0, 0, 0, 0), matrix,
                u32(16 << 16, 16 << 16)),
            mp4Box('mdia',
                mp4FullBox('mdhd', 0, 0, u32(0, 0, 30, FRAMES), u16(0x55c4, 0)),
                mp4FullBox('hdlr', 0, 0, u32(0), Buffer.from('vide', 'latin1'), Buffer.alloc(12),
                    Buffer.from('VideoHandler\0', 'latin1')),
                mp4Box('minf',
                    mp4FullBox('vmhd', 0, 1, u16(0, 0, 0, 0)),
                    mp4Box('dinf', mp4FullBox('dref', 0, 0, u32(1), mp4FullBox('url ', 0, 1))),
                    mp4Box('stbl',
                        mp4FullBox('stsd', 0, 0, u32(1), avc1),
                        mp4FullBox('stts', 0, 0, u32(1, FRAMES, 1)),
                        mp4FullBox('stss', 0, 0, u32(1, 1)),
                        mp4FullBox('stsc', 0, 0, u32(1, 1, FRAMES, 1)),
                        mp4FullBox('stsz', 0, 0, u32(0, FRAMES), u32(...sampleBufs.map((b) => b.length))),
                        mp4FullBox('stco', 0, 0, u32(1, chunkOffset)))))));

    const ftyp = mp4Box('ftyp', Buffer.from('isom', 'latin1'), u32(0x200), Buffer.from('isomiso2avc1mp41', 'latin1'));
    // The moov size does not depend on the offset value, so build it twice.
    const moovLen = buildMoov(0).length;
    const moov = buildMoov(ftyp.length + moovLen + 8);
    const mdat = mp4Box('mdat', ...sampleBufs);
    return Buffer.concat([ftyp, moov, mdat]);
}

const MEDIA = Object.freeze({
    png: makePng(16, 16),
    jpeg: makeJpeg(),
    webp: makeWebp(16, 16, [255, 140, 0, 255]),
    mp4: makeMp4(),
});

const MEDIA_TYPES = {
    png: ['image/png', 'png'],
    jpg: ['image/jpeg', 'jpeg'],
    jpeg: ['image/jpeg', 'jpeg'],
    webp: ['image/webp', 'webp'],
    mp4: ['video/mp4', 'mp4'],
};

/* An MP4 of `size` bytes (at least the real clip's): the clip, then a `free` box of filler. */
const BIG_MP4 = new Map();
function bigMp4(size) {
    const base = MEDIA.mp4;
    const n = Math.max(base.length + 8, Math.floor(size));
    let buf = BIG_MP4.get(n);
    if (!buf) {
        buf = Buffer.alloc(n);
        base.copy(buf, 0);
        buf.writeUInt32BE(n - base.length, base.length);
        buf.write('free', base.length + 4, 'latin1');
        let x = 0x9e3779b9;
        for (let i = base.length + 8; i + 4 <= n; i += 4) {
            x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
            buf.writeUInt32LE(x, i);
        }
        BIG_MP4.clear(); // one size at a time is all a run needs
        BIG_MP4.set(n, buf);
    }
    return buf;
}

/* Bodies larger than four of these are written a piece at a time (send). */
const STREAM_CHUNK = 256 * 1024;

const MEDIA_ETAGS = Object.fromEntries(Object.entries(MEDIA).map(([k, v]) => [k, '"' + sha256hex(v).slice(0, 16) + '"']));

/* Recognise uploaded bytes by their magic numbers. */
function sniffMedia(buf) {
    if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47) {
        return 'png';
    }
    if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) {
        return 'jpeg';
    }
    if (buf.length >= 12 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') {
        return 'webp';
    }
    if (buf.length >= 6 && buf.toString('latin1', 0, 4) === 'GIF8') {
        return 'gif';
    }
    if (buf.length >= 12 && buf.toString('latin1', 4, 8) === 'ftyp') {
        return 'mp4';
    }
    if (buf.length >= 4 && buf.readUInt32BE(0) === 0x1a45dfa3) {
        return 'webm';
    }
    return null;
}

/* Width and height from a PNG IHDR, or null. */
function pngSize(buf) {
    if (sniffMedia(buf) !== 'png' || buf.length < 24) {
        return null;
    }
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/* ======================================================================
 * Request parsing helpers: multipart bodies, cookies, route patterns
 * ==================================================================== */

const CRLF = Buffer.from('\r\n');

/* Parse one header parameter list such as `form-data; name="file"; filename="a.png"`. */
function parseHeaderParams(value) {
    const params = {};
    const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
    let m;
    while ((m = re.exec(value)) !== null) {
        const key = m[1].toLowerCase();
        let v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3].trim();
        if (key.endsWith('*')) { // RFC 5987: charset''percent-encoded
            const q = v.indexOf("''");
            try {
                v = decodeURIComponent(q >= 0 ? v.slice(q + 2) : v);
            } catch (e) { /* keep raw */ }
            params[key.slice(0, -1)] = v;
        } else if (params[key] === undefined) {
            params[key] = v;
        }
    }
    return params;
}

/*
 * Parse a multipart/form-data body (RFC 7578) held in one Buffer.
 * Returns [{name, filename, content_type, size, data}] or throws on malformed
 * input; the caller turns that into a 400 so a gateway bug shows up clearly.
 */
function parseMultipart(body, contentType) {
    const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType || '');
    if (!m) {
        throw new Error('multipart boundary missing from Content-Type');
    }
    const delim = Buffer.from('--' + (m[1] || m[2]).trim());
    const nextDelim = Buffer.concat([CRLF, delim]);
    const parts = [];
    let pos = body.indexOf(delim);
    if (pos < 0) {
        throw new Error('multipart delimiter not found');
    }
    for (;;) {
        pos += delim.length;
        if (body[pos] === 0x2d && body[pos + 1] === 0x2d) {
            return parts; // close delimiter
        }
        while (body[pos] === 0x20 || body[pos] === 0x09) {
            pos++; // transport padding
        }
        if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) {
            throw new Error('malformed multipart delimiter line');
        }
        pos += 2;
        let headerText = '';
        let dataStart;
        if (body[pos] === 0x0d && body[pos + 1] === 0x0a) {
            dataStart = pos + 2; // part without headers
        } else {
            const headEnd = body.indexOf('\r\n\r\n', pos);
            if (headEnd < 0) {
                throw new Error('unterminated multipart part headers');
            }
            headerText = body.toString('utf8', pos, headEnd);
            dataStart = headEnd + 4;
        }
        const end = body.indexOf(nextDelim, dataStart);
        if (end < 0) {
            throw new Error('unterminated multipart part');
        }
        const headers = {};
        for (const line of headerText.split('\r\n')) {
            const c = line.indexOf(':');
            if (c > 0) {
                headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
            }
        }
        const disp = headers['content-disposition'] || '';
        const dp = parseHeaderParams(disp);
        const data = body.subarray(dataStart, end);
        parts.push({
            name: dp.name !== undefined ? dp.name : null,
            filename: dp.filename !== undefined ? dp.filename : null,
            content_type: headers['content-type'] || null,
            size: data.length,
            data,
        });
        pos = end + 2;
    }
}

/* The journal keeps a summary of each part, never the bytes of file parts. */
function summarizePart(p) {
    const out = { name: p.name, filename: p.filename, content_type: p.content_type, size: p.size };
    const isText = p.filename === null || (p.content_type || '').startsWith('text/');
    if (isText && p.size <= 4096) {
        out.value = p.data.toString('utf8');
    }
    if (p.filename !== null) {
        out.sha256 = sha256hex(p.data);
        out.sniffed = sniffMedia(p.data);
    }
    return out;
}

function parseCookies(header) {
    const out = {};
    if (!header) {
        return out;
    }
    for (const piece of header.split(';')) {
        const eq = piece.indexOf('=');
        if (eq > 0) {
            out[piece.slice(0, eq).trim()] = piece.slice(eq + 1).trim();
        }
    }
    return out;
}

/* Query string -> object; a repeated key becomes an array. */
function parseQuery(raw) {
    const out = {};
    if (!raw) {
        return out;
    }
    for (const [k, v] of new URLSearchParams(raw)) {
        if (out[k] === undefined) {
            out[k] = v;
        } else if (Array.isArray(out[k])) {
            out[k].push(v);
        } else {
            out[k] = [out[k], v];
        }
    }
    return out;
}

/*
 * Route patterns, used by the router, by arms and by journal filters:
 *   "POST /backend/nf/create"              exact path, one method
 *   "/backend/nf/pending*"                 any method, path prefix ("*" = anything)
 *   "DELETE /backend/project_y/post/{id}"  "{name}" or ":name" = one path segment
 *   "*"                                    everything
 */
function compilePattern(spec) {
    let text = String(spec).trim();
    let method = '*';
    const sp = text.indexOf(' ');
    if (sp > 0) {
        method = text.slice(0, sp).toUpperCase();
        text = text.slice(sp + 1).trim();
    } else if (/^[A-Za-z]+$/.test(text) && text !== '*') {
        method = text.toUpperCase(); // "GET" alone: every path of that method
        text = '*';
    }
    const names = [];
    const src = text.replace(/\{(\w+)\}|:(\w+)|\*|[.+?^$()[\]\\|]/g, (tok, a, b) => {
        if (a || b) {
            names.push(a || b);
            return '([^/]+)';
        }
        if (tok === '*') {
            names.push('*');
            return '(.*)';
        }
        return '\\' + tok;
    });
    return { spec: String(spec), method, path: text, re: new RegExp('^' + src + '$'), names };
}

/* Test a compiled pattern; returns the params object or null. */
function matchPattern(pat, method, path) {
    if (pat.method !== '*' && pat.method !== method) {
        return null;
    }
    const m = pat.re.exec(path);
    if (!m) {
        return null;
    }
    const params = {};
    pat.names.forEach((n, i) => {
        let v = m[i + 1];
        try {
            v = decodeURIComponent(v);
        } catch (e) { /* keep raw */ }
        params[n] = v;
    });
    return params;
}

/* ======================================================================
 * Errors and canonical bodies
 * ==================================================================== */

class HttpError extends Error {
    constructor(status, message, code = null, extra = {}) {
        super(message);
        this.status = status;
        this.code = code;
        this.extra = extra;
    }
}

/* The OpenAI error envelope of protocol doc section 3. */
function errorEnvelope(message, code = null, type = null, param = null, status = 400) {
    return {
        error: {
            message,
            type: type || (status >= 500 ? 'server_error' : 'invalid_request_error'),
            param,
            code,
        },
    };
}

const MSG = {
    unauthorized: 'Unauthorized',
    invalidated: 'Your authentication token has been invalidated. Please try signing in again.',
    expired: 'Your authentication token has expired. Please try signing in again.',
    heavyLoad: "We're under heavy load, please try again later.",
    violation: 'This content may violate our guardrails concerning similarity to third-party content.',
    violationMd: 'This content may violate our **guardrails** concerning similarity to third-party content.',
};

const CLOUDFLARE_HTML = '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>' +
    '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body>' +
    '<div class="main-wrapper" role="main"><div class="main-content"><h1>sora.chatgpt.com</h1>' +
    '<p>Verifying you are human. This may take a few seconds.</p></div></div>' +
    '<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=fake"></script>' +
    '</body></html>';

/*
 * Named failure presets for /__fake/arm, so tests need not spell out bodies.
 * Each gives a status and a body (an object is sent as JSON).
 */
const ARM_PRESETS = {
    unauthorized: () => [401, errorEnvelope(MSG.unauthorized)],
    token_invalidated: () => [401, errorEnvelope(MSG.invalidated, 'token_invalidated')],
    token_expired: () => [401, errorEnvelope(MSG.expired, 'token_expired')],
    too_many_concurrent_tasks: () => [429, {
        error: {
            message: 'You already have 3 generations in progress. Please wait for one to finish.',
            type: 'invalid_request_error', param: null, code: 'too_many_concurrent_tasks', details: { num_tasks: 3 },
        },
    }],
    rate_limit_reached: () => [429, {
        ...errorEnvelope("You've reached your video generation limit. Please try again later.", 'rate_limit_exceeded'),
        rate_limit_and_credit_balance: {
            estimated_num_videos_remaining: 0, rate_limit_reached: true, access_resets_in_seconds: 3600,
        },
    }],
    heavy_load: () => [503, errorEnvelope(MSG.heavyLoad, null, 'server_error', null, 503)],
    unsupported_country_code: () => [403, errorEnvelope('Sora is not available in your country.', 'unsupported_country_code', null, 'XX')],
    invalid_sentinel: () => [400, errorEnvelope('Invalid sentinel token', 'invalid_sentinel')],
    content_policy: () => [400, errorEnvelope('This prompt violates our content policies.', 'content_policy_violation', null, 'prompt')],
    invalid_file: () => [400, errorEnvelope('Invalid image', 'invalid_file')],
    user_not_found: () => [404, errorEnvelope('User not found', 'not_found')],
    not_found: () => [404, errorEnvelope('Not found', 'not_found')],
    invalid_grant: () => [401, { error: 'invalid_grant', error_description: 'Refresh token is invalid or expired.' }],
    server_error: () => [500, errorEnvelope('The server had an error while processing your request.', null, 'server_error', null, 500)],
    bad_gateway: () => [502, errorEnvelope('Bad gateway', null, 'server_error', null, 502)],
    empty: () => [200, {}],
    not_json: () => [200, 'OK, but this is not JSON'],
    cloudflare: () => [403, CLOUDFLARE_HTML],
};

/* ======================================================================
 * Defaults: configuration and scripts
 * ==================================================================== */

const DEFAULT_CONFIG = Object.freeze({
    // openai-sentinel-token checking on the generation/publish POSTs:
    // "off", "presence" (non-empty header) or "json" (JSON with p, c, flow).
    sentinel: 'presence',
    journal_size: 20000, // ring capacity; counters in /__fake/stats never drop
    max_page_size: 100, // every `limit` query parameter is clamped to this
    max_concurrent_videos: 3, // running video tasks per account before 429
    default_remaining: 30, // nf/check estimated_num_videos_remaining for new accounts
    default_resets_in: 46800, // access_resets_in_seconds for new accounts
    quota_window_s: 86400, // after a quota refill the next reset is this far away
    at_lifetime_s: 864000, // exp of issued access tokens (10 days)
    enforce_at_expiry: true, // an AT past its exp gets 401 token_expired
    rotate_refresh_tokens: true, // RT -> AT returns a new RT and kills the old one
    public_base_url: null, // base of absolute media URLs; default: from the Host header
    parse_token: 'fake-parse-token', // token the custom parse server accepts
    valid_invite_codes: ['FAKEINVITE'], // accepted by invite/accept besides accounts' own codes
    taken_usernames: [], // usernames reported taken though no account owns them
    username_check_taken_first: 0, // the next N username checks say "taken"
    storyboard_strict: true, // nf/create/storyboard needs "Shot N:" formatted prompts
    validate_uploads: true, // uploads must carry real image/video bytes (magic numbers)
    remix_requires_known_post: true, // remix_target_id must name an existing post
    watermark_free_requires_post: true, // /MP4/{post}.mp4 only for existing posts
    max_body_bytes: 64 * 1024 * 1024,
    sentinel_pow_required: false, // /backend-api/sentinel/req proofofwork.required
    sentinel_pow_difficulty: '0fffff',
    models: ['sy_8', 'sy_8_20251208', 'sy_ore'],
    seed_public_data: true, // public users, posts and a character for feeds/search/remix
    verbose: false, // log each request to stderr
    // Seconds a draft's media URLs stay valid, counted from the draft's creation: with a
    // number they are signed Azure-blob style (?se=<ISO-8601>&sp=r&sv=…&sr=b&sig=…) and
    // /media/ answers 403 once se has passed; null: plain URLs, as before.
    media_url_ttl_s: null,
    // Size in bytes of the body served for /media/vid/*.mp4 (the real clip followed by a
    // `free` box of filler, so it is still a valid MP4); null: the 16x16 clip alone.
    video_bytes: null,
});

const VIDEO_OUTCOMES = ['success', 'violation', 'fail', 'stall', 'vanish'];
const IMAGE_OUTCOMES = ['success', 'fail', 'empty', 'stall'];
const CAMEO_OUTCOMES = ['completed', 'never', 'no_asset', 'bad_asset', 'failed', 'rejected'];

/*
 * Default scripts (protocol doc section 8.3).  "polls" scripts advance one step
 * on every read of the list that shows the object (pending, recent_tasks,
 * in_progress), which keeps tests deterministic whatever the gateway's sleep.
 */
const DEFAULT_SCRIPTS = Object.freeze({
    video: {
        mode: 'polls', // or "seconds"
        pending: [null, 0.3, 0.7], // progress_pct shown by successive pending reads
        duration_s: 20, // seconds mode: time spent in pending
        draft_delay_polls: 0, // drafts reads that still miss the finished draft
        draft_delay_s: 0, // seconds mode equivalent
        url_delay_polls: 0, // drafts reads showing the draft with url null (later semantics)
        outcome: 'success', // success | violation | fail (no URL) | stall | vanish
        stall_pct: 0.1, // progress shown forever by a stalled task
        reason: MSG.violation,
    },
    image: {
        mode: 'polls',
        progress: [0.5], // "processing" progress shown by successive reads, then final
        duration_s: 5,
        invisible_polls: 0, // reads that do not list the task yet
        outcome: 'success', // success | fail | empty (succeeded, no generations) | stall
        stall_pct: 0.5,
        error_message: 'Image generation failed due to an internal error.',
    },
    cameo: {
        mode: 'polls',
        processing_polls: 2, // in_progress reads answering "Processing"
        duration_s: 10,
        outcome: 'completed', // completed | never | no_asset (profile_asset_url null) | bad_asset
        //   (an avatar URL that answers 404) | failed | rejected (the cameo ends there, with status_message)
    },
});

const SLOW = [null, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.9];

/* Prompt keywords (case-insensitive substrings) and the script fields they override. */
const DEFAULT_KEYWORDS = Object.freeze({
    '#violate': {
        video: { outcome: 'violation' },
        image: { outcome: 'fail', error_message: 'Your request was rejected as a result of our safety system.' },
    },
    '#fail': { video: { outcome: 'fail' }, image: { outcome: 'fail' } },
    '#slow': { video: { pending: SLOW, duration_s: 60 }, image: { progress: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6] } },
    '#stall': { video: { outcome: 'stall' }, image: { outcome: 'stall' } },
    '#vanish': { video: { outcome: 'vanish' } },
    '#latedraft': { video: { draft_delay_polls: 2, draft_delay_s: 5 } },
    '#nourl': { video: { url_delay_polls: 2 } },
    '#empty': { image: { outcome: 'empty' } },
    '#invisible': { image: { invisible_polls: 2 } },
    '#reject': { submit: { status: 400, body: errorEnvelope('This prompt violates our content policies.', 'content_policy_violation', null, 'prompt') } },
});

const STYLES = ['festive', 'retro', 'news', 'selfie', 'handheld', 'anime', 'comic', 'golden', 'vintage'];
const N_FRAMES = [150, 300, 450, 600, 750];
const PLAN_TITLES = {
    chatgpt_plus: 'ChatGPT Plus',
    chatgpt_pro: 'ChatGPT Pro',
    chatgpt_team: 'ChatGPT Team',
    chatgpt_enterprise: 'ChatGPT Enterprise',
};
const USERNAME_RE = /^[a-z0-9][a-z0-9._]{2,29}$/;
const POST_ID_RE = /^s_[0-9a-f]{32}$/;
const ANIMALS = ['fluffycat', 'sleepyfox', 'bravepanda', 'tinyotter', 'jollyowl', 'quietwolf'];

function isoNoMs(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/* Validate and normalise one script object for `kind`; throws Error on bad input. */
function checkScript(kind, s) {
    if (!isObject(s)) {
        throw new Error(`script for ${kind} must be an object`);
    }
    const base = kind === 'image' ? 'image' : kind === 'cameo' ? 'cameo' : 'video';
    const outcomes = base === 'image' ? IMAGE_OUTCOMES : base === 'cameo' ? CAMEO_OUTCOMES : VIDEO_OUTCOMES;
    if (s.mode !== undefined && s.mode !== 'polls' && s.mode !== 'seconds') {
        throw new Error(`${kind}.mode must be "polls" or "seconds"`);
    }
    if (s.outcome !== undefined && !outcomes.includes(s.outcome)) {
        throw new Error(`${kind}.outcome must be one of ${outcomes.join(', ')}`);
    }
    for (const key of ['pending', 'progress']) {
        if (s[key] !== undefined) {
            if (!Array.isArray(s[key]) || !s[key].every((v) => v === null || (typeof v === 'number' && v >= 0 && v <= 1))) {
                throw new Error(`${kind}.${key} must be an array of null or numbers in 0..1`);
            }
        }
    }
    for (const key of ['duration_s', 'draft_delay_polls', 'draft_delay_s', 'url_delay_polls', 'invisible_polls', 'processing_polls']) {
        if (s[key] !== undefined && !(typeof s[key] === 'number' && s[key] >= 0)) {
            throw new Error(`${kind}.${key} must be a non-negative number`);
        }
    }
    if (s.path !== undefined && (base !== 'image' || typeof s.path !== 'string' || !/^\/media\/[A-Za-z0-9_./-]+\.(png|jpg|webp)$/.test(s.path))) {
        throw new Error(`${kind}.path must be an image's /media/<name>.png|jpg|webp path (images only)`);
    }
    return s;
}

/* ======================================================================
 * The fake: state, request pipeline, control API
 * ==================================================================== */

class FakeSora {
    /*
     * options.config: overrides of DEFAULT_CONFIG; they are also what
     * POST /__fake/reset returns to.
     */
    constructor(options = {}) {
        this.startConfig = { ...clone(DEFAULT_CONFIG), ...clone(options.config || {}) };
        this.port = 0;
        this.timers = new Set(); // delayed answers, cleared on close()
        this.router = ROUTES.map(([method, path, handler, opts]) => ({
            pattern: compilePattern(method + ' ' + path),
            key: method + ' ' + path,
            handler,
            opts: opts || {},
        }));
        this.controlRouter = CONTROL_ROUTES.map(([method, path, handler]) => ({
            pattern: compilePattern(method + ' ' + path),
            key: method + ' ' + path,
            handler,
        }));
        this.reset();
        for (const r of [...this.router, ...this.controlRouter]) {
            if (typeof this[r.handler] !== 'function') {
                throw new Error(`route ${r.key}: handler ${r.handler} is missing or shadowed by state`);
            }
        }
    }

    /* Forget everything: accounts, sessions, tasks, media, arms, journal, counters. */
    reset() {
        this.config = clone(this.startConfig);
        this.scripts = clone(DEFAULT_SCRIPTS);
        this.keywords = clone(DEFAULT_KEYWORDS);
        this.nextScripts = { video: [], storyboard: [], remix: [], image: [], cameo: [] };

        this.accounts = []; // creation order
        this.tokens = new Map(); // AT -> {token, account, exp, revoked}
        this.byUserId = new Map();
        this.byEmail = new Map();
        this.usernames = new Map(); // lower-case name -> {kind: account|character|reserved, ref}
        this.sessions = new Map(); // ST -> account
        this.refreshTokens = new Map(); // RT -> account
        this.inviteCodes = new Map(); // upper-case code -> account
        this.accountSeq = 0;

        this.tasks = new Map(); // task id -> task (video, storyboard, remix, image)
        this.drafts = new Map(); // gen id -> draft
        this.posts = new Map(); // post id -> post (deleted ones removed)
        this.postSeq = 0;
        this.uploads = new Map(); // media_ id -> upload
        this.files = new Map(); // file_ id -> file
        this.cameos = new Map(); // cameo id -> cameo
        this.characters = new Map(); // ch_ id -> character
        this.sentinelChallenges = 0;

        this.arms = [];
        this.armSeq = 0;

        this.resetJournal();
        this.requestsTotal = 0;
        this.routeStats = new Map();
        this.statusCounts = {};
        this.counters = {
            accounts_created: 0, tokens_issued: 0, arms_fired: 0,
            tasks_created: { video: 0, storyboard: 0, remix: 0, image: 0 },
            tasks_finished: 0, drafts_created: 0, posts_created: 0, posts_deleted: 0,
            uploads: 0, files: 0, cameos_created: 0, characters_created: 0, characters_deleted: 0,
            rejected: { concurrency: 0, quota: 0, sentinel: 0, auth: 0 },
            // Media bodies: started, sent whole, cut off by the client; open right now.
            media: { started: 0, finished: 0, aborted: 0, open: 0, expired: 0 },
        };
        for (const name of this.config.taken_usernames || []) {
            this.usernames.set(String(name).toLowerCase(), { kind: 'reserved', ref: null });
        }
        if (this.config.seed_public_data) {
            this.seedPublicData();
        }
    }

    resetJournal() {
        const cap = Math.max(1, Math.floor(Number(this.config.journal_size) || 1));
        this.ring = new Array(cap);
        this.ringPos = 0;
        this.ringCount = 0;
        this.journalSeq = this.journalSeq || 0; // seq keeps growing so `since` stays valid
        this.journalEvicted = 0;
    }

    /* ------------------------------------------------------------ accounts */

    /*
     * Create one account from control-API options (see README).  Returns the
     * account object; throws Error on invalid options.
     */
    createAccount(o = {}) {
        // Seeded public users do not use up {n}: the first test account is tester1.
        // The counter only advances once the options have been accepted.
        const n = o.seeded ? 0 : this.accountSeq + 1;
        const sub = (v) => (typeof v === 'string' ? v.replace(/\{n\}/g, String(n)) : v);
        const email = sub(o.email !== undefined ? o.email : 'tester{n}@example.test');
        let username = o.username === null ? null : sub(o.username !== undefined ? o.username : 'tester{n}');
        if (o.username === undefined) {
            // The default name may have been taken explicitly by an earlier test.
            for (let k = 2; this.usernames.has(username); k++) {
                username = `tester${n}_${k}`;
            }
        }
        if (username !== null) {
            if (!USERNAME_RE.test(username)) {
                throw new Error(`invalid username ${JSON.stringify(username)}`);
            }
            if (this.usernames.has(username)) {
                throw new Error(`username ${username} is already taken`);
            }
        }
        let plan = o.plan !== undefined ? o.plan : 'chatgpt_plus';
        if (typeof plan === 'string') {
            plan = plan === 'free' ? null : { id: plan, title: PLAN_TITLES[plan] || plan };
        }
        const now = Date.now();
        const activated = o.needs_bootstrap ? false
            : (o.sora2_activated !== undefined ? !!o.sora2_activated : (o.sora2 !== undefined ? !!o.sora2 : true));
        let inviteCode = o.invite_code !== undefined ? String(sub(o.invite_code)).toUpperCase() : null;
        if (inviteCode !== null && this.inviteCodes.has(inviteCode)) {
            throw new Error(`invite code ${inviteCode} belongs to another account`);
        }
        while (inviteCode === null || this.inviteCodes.has(inviteCode)) {
            inviteCode = randomFrom(UPPER_ALNUM, 6);
        }
        const st = typeof o.session_token === 'string' ? sub(o.session_token) : null;
        const rt = typeof o.refresh_token === 'string' ? sub(o.refresh_token) : null;
        if ((st && this.sessions.has(st)) || (rt && this.refreshTokens.has(rt))) {
            throw new Error('session_token / refresh_token already belongs to another account');
        }
        const remaining = o.remaining !== undefined ? o.remaining
            : (o.remaining_videos !== undefined ? o.remaining_videos : this.config.default_remaining);
        const resetsIn = o.resets_in !== undefined ? o.resets_in
            : (o.resets_in_s !== undefined ? o.resets_in_s : this.config.default_resets_in);
        const a = {
            seq: this.accounts.length + 1,
            user_id: o.user_id || 'user-' + randomFrom(ALNUM, 24),
            email,
            name: o.name !== undefined ? sub(o.name) : `Test User ${n}`,
            username,
            plan,
            plan_end_ms: now + 30 * 86400e3,
            sora2_activated: activated,
            bootstrap_activates: o.bootstrap_activates !== undefined ? !!o.bootstrap_activates : !!o.needs_bootstrap,
            bootstrap_calls: 0,
            country_blocked: o.country_blocked ? (typeof o.country_blocked === 'string' ? o.country_blocked : 'XX') : null,
            billing_token_expired: !!o.billing_token_expired,
            invite_code: inviteCode,
            redeemed_count: o.redeemed_count !== undefined ? o.redeemed_count : 0,
            total_count: o.total_count !== undefined ? o.total_count : 4,
            remaining: remaining === null ? null : Number(remaining),
            refill_to: o.refill_to !== undefined ? o.refill_to : (remaining === null ? null : Number(remaining)),
            resets_at: now + Number(resetsIn) * 1000,
            max_concurrent: o.max_concurrent !== undefined ? o.max_concurrent : null,
            at_lifetime_s: o.at_lifetime_s !== undefined ? Number(o.at_lifetime_s) : null,
            client_id: o.client_id || DEFAULT_CLIENT_ID,
            can_cameo: o.can_cameo !== undefined ? !!o.can_cameo : false,
            verified: !!o.verified,
            description: o.description || '',
            follower_count: o.follower_count || 0,
            following_count: o.following_count || 0,
            profile_picture_path: o.profile_picture ? `/media/pfp/${n}.png` : null,
            seeded: !!o.seeded,
            access_tokens: [], // every AT ever issued, oldest first
            session_tokens: [],
            refresh_token: null,
            running: new Map(), // running video tasks, insertion (= creation) order
            drafts: [], // oldest first; read newest first
            hiddenDrafts: new Set(), // finished drafts still invisible to drafts reads
            imageTasks: [], // oldest first
            posts: [], // post ids, oldest first
            created_at: now,
        };
        if (!o.seeded) {
            this.accountSeq = n;
        }
        this.accounts.push(a);
        this.byUserId.set(a.user_id, a);
        this.byEmail.set(email.toLowerCase(), a);
        if (username !== null) {
            this.usernames.set(username, { kind: 'account', ref: a });
        }
        this.inviteCodes.set(inviteCode, a);
        this.counters.accounts_created++;
        if (!o.seeded) {
            const lifetime = o.expired ? -3600 : (o.at_lifetime_s !== undefined ? Number(o.at_lifetime_s) : null);
            const rec = this.issueAccessToken(a, lifetime);
            if (o.revoked) {
                rec.revoked = true;
            }
            if (o.session_token !== false) {
                this.addSession(a, st);
            }
            if (o.refresh_token !== false) {
                this.setRefreshToken(a, rt);
            }
        }
        return a;
    }

    /* Mint a JWT access token for `a`; lifetimeS overrides the configured lifetime. */
    issueAccessToken(a, lifetimeS = null) {
        const iat = Math.floor(Date.now() / 1000);
        const life = lifetimeS !== null ? lifetimeS
            : (a.at_lifetime_s !== null ? a.at_lifetime_s : this.config.at_lifetime_s);
        const exp = iat + Math.round(life);
        const planType = a.plan ? a.plan.id.replace(/^chatgpt_/, '') : 'free';
        const token = makeJwt({
            aud: ['https://api.openai.com/v1'],
            client_id: a.client_id,
            exp,
            iat,
            iss: 'https://auth.openai.com',
            jti: uuid4(),
            nbf: iat,
            scp: ['openid', 'email', 'profile', 'offline_access', 'model.request', 'model.read'],
            sub: 'auth0|' + a.user_id.slice(5),
            [AUTH_CLAIM]: { user_id: a.user_id, chatgpt_plan_type: planType, chatgpt_account_id: stableHex(a.user_id, 32) },
            [PROFILE_CLAIM]: { email: a.email, email_verified: true },
        });
        const rec = { token, account: a, exp, revoked: false, issued_at: iat };
        this.tokens.set(token, rec);
        a.access_tokens.push(token);
        this.counters.tokens_issued++;
        return rec;
    }

    addSession(a, st = null) {
        // Real session tokens are long JWE strings; the gateway treats them as opaque.
        const token = st || 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..' + Buffer.from(randBytes(48)).toString('base64url');
        this.sessions.set(token, a);
        a.session_tokens.push(token);
        return token;
    }

    setRefreshToken(a, rt = null) {
        if (a.refresh_token) {
            this.refreshTokens.delete(a.refresh_token);
        }
        const token = rt || 'rt_' + Buffer.from(randBytes(30)).toString('base64url');
        this.refreshTokens.set(token, a);
        a.refresh_token = token;
        return token;
    }

    /* Control-API view of a freshly created account. */
    accountCredentials(a) {
        const at = a.access_tokens[a.access_tokens.length - 1] || null;
        const rec = at ? this.tokens.get(at) : null;
        return {
            user_id: a.user_id,
            email: a.email,
            name: a.name,
            username: a.username,
            plan: a.plan ? a.plan.id : null,
            access_token: at,
            access_token_exp: rec ? rec.exp : null,
            session_token: a.session_tokens[a.session_tokens.length - 1] || null,
            refresh_token: a.refresh_token,
            client_id: a.client_id,
            invite_code: a.invite_code,
            sora2_activated: a.sora2_activated,
        };
    }

    /* Find an account from {access_token|email|user_id|username}; throws if none. */
    findAccount(sel) {
        let a = null;
        if (sel.access_token) {
            const rec = this.tokens.get(sel.access_token);
            a = rec ? rec.account : null;
        } else if (sel.email) {
            a = this.byEmail.get(String(sel.email).toLowerCase()) || null;
        } else if (sel.user_id) {
            a = this.byUserId.get(sel.user_id) || null;
        } else if (sel.username) {
            const u = this.usernames.get(String(sel.username).toLowerCase());
            a = u && u.kind === 'account' ? u.ref : null;
        } else {
            throw new Error('select the account with access_token, email, user_id or username');
        }
        if (!a) {
            throw new Error('no such account');
        }
        return a;
    }

    /* Quota refills once its reset time has passed, like the real daily window. */
    refillIfDue(a, now = Date.now()) {
        if (now >= a.resets_at) {
            if (a.refill_to !== null && a.remaining !== null && a.remaining < a.refill_to) {
                a.remaining = a.refill_to;
            }
            a.resets_at = now + this.config.quota_window_s * 1000;
        }
    }

    quotaView(a, now = Date.now()) {
        this.refillIfDue(a, now);
        const remaining = a.remaining === null ? 9999 : Math.max(0, a.remaining);
        return {
            estimated_num_videos_remaining: remaining,
            estimated_num_purchased_videos_remaining: 0,
            credit_remaining: remaining,
            rate_limit_reached: remaining <= 0,
            access_resets_in_seconds: Math.max(0, Math.ceil((a.resets_at - now) / 1000)),
        };
    }

    /* Public profile (X28) of an account or a character. */
    profileOf(ctx, x) {
        if (x.character_id) {
            const owner = x.owner;
            return {
                user_id: x.character_id,
                username: x.username,
                display_name: x.display_name,
                description: x.instruction_set ? x.instruction_set.value.map((v) => v.value).join(' ') : '',
                follower_count: 0, following_count: 0, post_count: 0, likes_received_count: 0,
                remix_count: 0, cameo_count: 0,
                can_cameo: x.visibility === 'public' || (ctx.account === owner),
                verified: false,
                permalink: `https://sora.chatgpt.com/profile/${x.username}`,
                profile_picture_url: x.profile_picture_path ? ctx.base + x.profile_picture_path : null,
                owner_profile: { user_id: owner.user_id, username: owner.username, display_name: owner.name },
            };
        }
        let likes = 0;
        let remixes = 0;
        for (const id of x.posts) {
            const p = this.posts.get(id);
            if (p) {
                likes += p.like_count;
                remixes += p.remix_count;
            }
        }
        return {
            user_id: x.user_id,
            username: x.username,
            display_name: x.name,
            description: x.description,
            follower_count: x.follower_count,
            following_count: x.following_count,
            post_count: x.posts.length,
            likes_received_count: likes,
            remix_count: remixes,
            cameo_count: [...this.characters.values()].filter((c) => c.owner === x).length,
            can_cameo: x.can_cameo,
            verified: x.verified,
            permalink: x.username ? `https://sora.chatgpt.com/profile/${x.username}` : null,
            profile_picture_url: x.profile_picture_path ? ctx.base + x.profile_picture_path : null,
        };
    }

    /* Short profile embedded in feed items. */
    shortProfile(ctx, a) {
        return {
            user_id: a.user_id,
            username: a.username,
            display_name: a.name,
            profile_picture_url: a.profile_picture_path ? ctx.base + a.profile_picture_path : null,
            permalink: a.username ? `https://sora.chatgpt.com/profile/${a.username}` : null,
            verified: a.verified,
            follower_count: a.follower_count,
        };
    }

    /*
     * Seed public users, posts and one public character, so feeds, profile
     * lookups, mention search and remix have data without any generation.
     * Ids are stable across resets so tests can hard-code them.
     */
    seedPublicData() {
        const users = [
            { user_id: 'user-4qLuo8ATzeEsuvCpOUAfAZY0', username: 'happyremixer', name: 'Happy Remixer', description: 'I remix things.', follower_count: 120, following_count: 8, can_cameo: true, profile_picture: true },
            { user_id: 'user-Seed2Painter000000000000', username: 'sunsetpainter', name: 'Sunset Painter', description: 'Golden hours only.', follower_count: 45, following_count: 12, can_cameo: false, verified: true },
            { user_id: 'user-Seed3Skater0000000000000', username: 'skaterdog', name: 'Skater Dog', description: 'Kickflips.', follower_count: 7, following_count: 1, can_cameo: true },
        ].map((u) => this.createAccount({ ...u, seeded: true, email: `${u.username}@seed.example.test` }));
        const texts = ['sunset drive', 'cat surfing at dawn', 'city in the rain', 'robot learns to dance', 'paper boats race', 'lanterns over the lake'];
        const base = 1765400000.5;
        // Created oldest first so every per-user list is in posting order; the
        // counts are chosen so that each feed `cut` gives a different order.
        for (let i = texts.length - 1; i >= 0; i--) {
            const id = i === 0 ? 's_aa11bb22cc33dd44ee55ff6677889900' : 's_' + stableHex('seed-post-' + i);
            this.createPost(users[i % users.length], {
                id, text: texts[i], posted_at: base - i * 3600,
                like_count: [12, 90, 33, 4, 61, 18][i], view_count: [340, 800, 2100, 55, 420, 1500][i],
                remix_count: [1, 9, 0, 2, 5, 0][i], seeded: true,
            });
        }
        const owner = users[0];
        const ch = {
            character_id: 'ch_693b0192af888191ac8b3af188acebce',
            cameo_id: '7d3e1f9a2b4c48d6a5e0f1b2c3d4e5f6',
            owner,
            username: 'fluffycat417',
            display_name: 'Fluffy Cat',
            visibility: 'public',
            instruction_set: { value: [{ type: 'text', value: 'A fluffy white cat with blue eyes.' }] },
            safety_instruction_set: null,
            profile_asset_pointer: null,
            profile_picture_path: '/media/avatar/cameo_7d3e1f9a.webp',
            created_at: Date.now(),
            seeded: true,
        };
        this.characters.set(ch.character_id, ch);
        this.usernames.set(ch.username, { kind: 'character', ref: ch });
    }

    /* Create a post; `draft` (optional) is the generation it publishes. */
    createPost(a, o = {}) {
        const id = o.id || 's_' + hex(16);
        const draft = o.draft || null;
        const post = {
            id,
            owner: a,
            text: o.text !== undefined ? o.text : '',
            posted_at: o.posted_at !== undefined ? o.posted_at : Math.round(nowSec() * 1000) / 1000,
            like_count: o.like_count || 0,
            view_count: o.view_count || 0,
            remix_count: o.remix_count || 0,
            generation_id: draft ? draft.id : null,
            width: draft ? draft.width : 704,
            height: draft ? draft.height : 1280,
            n_frames: draft ? draft.n_frames : 300,
            seq: ++this.postSeq,
            seeded: !!o.seeded,
        };
        this.posts.set(id, post);
        a.posts.push(id);
        this.counters.posts_created++;
        return post;
    }

    renderPost(ctx, p) {
        return {
            id: p.id,
            text: p.text,
            permalink: `https://sora.chatgpt.com/p/${p.id}`,
            preview_image_url: `${ctx.base}/media/prev/${p.id}.jpg`,
            posted_at: p.posted_at,
            like_count: p.like_count,
            view_count: p.view_count,
            remix_count: p.remix_count,
            attachments: [{
                id: `${p.id}-attachment-0`,
                kind: 'sora',
                generation_id: p.generation_id,
                url: `${ctx.base}/media/vid/${p.id}_wm.mp4`,
                downloadable_url: `${ctx.base}/media/vid/${p.id}.mp4`,
                width: p.width,
                height: p.height,
                n_frames: p.n_frames,
                encodings: { thumbnail: { path: `${ctx.base}/media/thumb/${p.id}.jpg` } },
            }],
        };
    }

    /* ------------------------------------------------------------- scripts */

    /* Script for a new object of `kind`: default, then prompt keywords, then one-shot queue. */
    resolveScript(kind, prompt) {
        const base = kind === 'image' || kind === 'cameo' ? kind : 'video';
        const script = { ...this.scripts[base], ...(kind !== base && this.scripts[kind] ? this.scripts[kind] : {}) };
        let submit = null;
        if (prompt) {
            const lower = prompt.toLowerCase();
            for (const [kw, over] of Object.entries(this.keywords)) {
                if (lower.includes(kw.toLowerCase())) {
                    Object.assign(script, over[kind] || over[base] || {});
                    if (over.submit) {
                        submit = over.submit;
                    }
                }
            }
        }
        const queue = this.nextScripts[kind] && this.nextScripts[kind].length ? this.nextScripts[kind]
            : (this.nextScripts[base].length ? this.nextScripts[base] : null);
        if (queue) {
            const next = queue.shift();
            Object.assign(script, next.script || next);
            if (next.submit) {
                submit = next.submit;
            }
        }
        delete script.submit;
        return { script, submit };
    }

    /* ----------------------------------------------------------- journal */

    record(entry) {
        entry.seq = ++this.journalSeq;
        this.ringPush(entry);
    }

    ringPush(entry) {
        const cap = this.ring.length;
        this.ring[this.ringPos] = entry;
        this.ringPos = (this.ringPos + 1) % cap;
        if (this.ringCount < cap) {
            this.ringCount++;
        } else {
            this.journalEvicted++;
        }
    }

    /*
     * Journal entries oldest first, filtered by {route, since, method, path,
     * token, limit}.  `route` uses the same patterns as arms and also matches
     * the entry's route key exactly ("GET /backend/project_y/post/{id}").
     */
    journal(filter = {}) {
        const pat = filter.route ? compilePattern(filter.route) : null;
        const since = filter.since !== undefined ? Number(filter.since) : 0;
        const out = [];
        const cap = this.ring.length;
        const oldest = (this.ringPos - this.ringCount + cap) % cap;
        for (let i = 0; i < this.ringCount; i++) {
            const e = this.ring[(oldest + i) % cap];
            if (e.seq <= since) {
                continue;
            }
            if (pat && e.route !== filter.route && !matchPattern(pat, e.method, e.path)) {
                continue;
            }
            if (filter.method && e.method !== String(filter.method).toUpperCase()) {
                continue;
            }
            if (filter.path && !e.path.includes(filter.path)) {
                continue;
            }
            if (filter.token && e.token !== filter.token) {
                continue;
            }
            out.push(e);
        }
        const limit = filter.limit !== undefined ? Number(filter.limit) : 0;
        return limit > 0 ? out.slice(-limit) : out;
    }

    countRequest(key) {
        this.requestsTotal++;
        let s = this.routeStats.get(key);
        if (!s) {
            s = { count: 0, statuses: {} };
            this.routeStats.set(key, s);
        }
        s.count++;
        return s;
    }

    stats() {
        return {
            requests_total: this.requestsTotal,
            by_status: this.statusCounts,
            by_route: Object.fromEntries(this.routeStats),
            counters: this.counters,
            journal: {
                capacity: this.ring.length, size: this.ringCount,
                last_seq: this.journalSeq, evicted: this.journalEvicted,
            },
            live: {
                accounts: this.accounts.length, access_tokens: this.tokens.size, tasks: this.tasks.size,
                running_videos: this.accounts.reduce((n, a) => n + a.running.size, 0),
                drafts: this.drafts.size, posts: this.posts.size, cameos: this.cameos.size,
                characters: this.characters.size, arms: this.arms.length,
            },
        };
    }

    /* -------------------------------------------------------------- arms */

    /* Validate and store an arm (see README); returns its public view. */
    addArm(spec) {
        if (!isObject(spec) || !spec.route) {
            throw new Error('arm needs a "route" pattern such as "POST /backend/nf/create"');
        }
        const arm = {
            id: ++this.armSeq,
            route: String(spec.route),
            pattern: compilePattern(spec.route),
            status: spec.status,
            body: spec.body,
            headers: isObject(spec.headers) ? spec.headers : {},
            preset: spec.preset || null,
            html: !!spec.html,
            drop: !!spec.drop,
            hang: !!spec.hang,
            delay_ms: Math.max(0, Number(spec.delay_ms) || 0),
            slow_body_ms: Math.max(0, Number(spec.slow_body_ms) || 0),
            cut_body: !!spec.cut_body,
            times: spec.times === undefined ? 1 : Number(spec.times), // -1 = until disarmed
            skip: Math.max(0, Number(spec.skip) || 0), // let this many matches through first
            match: isObject(spec.match) ? spec.match : {},
            fired: 0,
        };
        if (arm.preset && !ARM_PRESETS[arm.preset]) {
            throw new Error(`unknown preset ${arm.preset}; known: ${Object.keys(ARM_PRESETS).join(', ')}`);
        }
        if (!(arm.times === -1 || arm.times >= 1)) {
            throw new Error('times must be >= 1, or -1 for "until disarmed"');
        }
        if (arm.status !== undefined && !(Number.isInteger(arm.status) && arm.status >= 100 && arm.status <= 599)) {
            throw new Error('status must be an HTTP status code');
        }
        this.arms.push(arm);
        return this.armView(arm);
    }

    armView(arm) {
        const view = { ...arm };
        delete view.pattern; // a RegExp does not serialise usefully
        return view;
    }

    /* First armed failure matching this request, consuming one use; or null. */
    takeArm(ctx) {
        if (this.arms.length === 0) {
            return null;
        }
        for (let i = 0; i < this.arms.length; i++) {
            const arm = this.arms[i];
            if (!matchPattern(arm.pattern, ctx.method, ctx.path)) {
                continue;
            }
            const m = arm.match;
            if (m.token && m.token !== ctx.token) {
                continue;
            }
            if (m.body_contains && !ctx.rawBody.toString('utf8').includes(m.body_contains)) {
                continue;
            }
            if (m.query && !Object.entries(m.query).every(([k, v]) => ctx.query[k] === String(v))) {
                continue;
            }
            if (m.header && !Object.entries(m.header).every(([k, v]) => ctx.headers[k.toLowerCase()] === String(v))) {
                continue;
            }
            if (arm.skip > 0) {
                arm.skip--;
                continue;
            }
            arm.fired++;
            this.counters.arms_fired++;
            if (arm.times !== -1 && arm.fired >= arm.times) {
                this.arms.splice(i, 1);
            }
            return arm;
        }
        return null;
    }

    /* Turn an arm into a response descriptor, or null for "delay, then answer normally". */
    armResponse(arm) {
        let status = arm.status;
        let body = arm.body;
        const headers = { ...arm.headers };
        if (arm.preset) {
            const [ps, pb] = ARM_PRESETS[arm.preset]();
            status = status !== undefined ? status : ps;
            body = body !== undefined ? body : pb;
            if (arm.preset === 'cloudflare') {
                headers['cf-mitigated'] = 'challenge';
                headers['Content-Type'] = 'text/html; charset=UTF-8';
            }
        }
        if (arm.html) {
            status = status !== undefined ? status : 403;
            body = body !== undefined ? body : CLOUDFLARE_HTML;
            headers['cf-mitigated'] = headers['cf-mitigated'] || 'challenge';
            headers['Content-Type'] = headers['Content-Type'] || 'text/html; charset=UTF-8';
            headers.Server = 'cloudflare';
        }
        if (status === undefined) {
            return null;
        }
        if (body === undefined) {
            body = status === 204 ? null : errorEnvelope(`Injected failure (HTTP ${status})`, 'injected', null, null, status);
        }
        if (typeof body === 'string' || Buffer.isBuffer(body)) {
            if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
                headers['Content-Type'] = 'text/plain; charset=utf-8';
            }
            return { status, raw: body, headers };
        }
        return { status, body, headers };
    }

    /* ---------------------------------------------------------- pipeline */

    /* Node 'request' listener. */
    handle(req, res) {
        const chunks = [];
        let size = 0;
        let tooBig = false;
        const max = this.config.max_body_bytes;
        req.on('data', (c) => {
            size += c.length;
            if (size > max) {
                tooBig = true;
            } else if (!tooBig) {
                chunks.push(c);
            }
        });
        req.on('error', () => { /* client went away; nothing to answer */ });
        req.on('end', () => {
            const rawBody = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
            try {
                this.dispatch(req, res, rawBody, tooBig);
            } catch (e) {
                this.internalError(res, e);
            }
        });
    }

    internalError(res, e) {
        process.stderr.write(`fake-sora: internal error: ${e && e.stack ? e.stack : e}\n`);
        if (!res.headersSent && !res.destroyed) {
            const body = JSON.stringify(errorEnvelope(`fake-sora internal error: ${e && e.message}`, 'fake_internal', null, null, 500));
            res.writeHead(500, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
            res.end(body);
        }
    }

    dispatch(req, res, rawBody, tooBig) {
        const url = req.url || '/';
        const q = url.indexOf('?');
        const path = q < 0 ? url : url.slice(0, q);
        const rawQuery = q < 0 ? '' : url.slice(q + 1);
        const method = req.method === 'HEAD' ? 'GET' : req.method;
        const host = req.headers.host;
        const ctx = {
            req, res, method, isHead: req.method === 'HEAD', path, rawQuery,
            query: parseQuery(rawQuery), headers: req.headers, rawBody,
            base: this.config.public_base_url
                ? String(this.config.public_base_url).replace(/\/+$/, '')
                : (host && /^[A-Za-z0-9.\-:[\]]+$/.test(host) ? `http://${host}` : `http://127.0.0.1:${this.port}`),
            started: Date.now(),
            body: null, parts: null, bodyError: null, account: null, token: null, entry: null,
        };

        if (path.startsWith('/__fake/') || path === '/__fake') {
            return this.dispatchControl(ctx, tooBig);
        }

        let route = null;
        let params = null;
        for (const r of this.router) {
            params = matchPattern(r.pattern, method, path);
            if (params) {
                route = r;
                break;
            }
        }
        ctx.params = params || {};
        ctx.routeKey = route ? route.key : `${req.method} <unmatched>`;
        this.parseBody(ctx, tooBig);
        const auth = req.headers.authorization;
        if (auth) {
            const m = /^\s*bearer\s+(\S+)\s*$/i.exec(auth);
            ctx.token = m ? m[1] : null;
        }

        const entry = {
            seq: 0,
            time: ctx.started,
            method: req.method,
            path,
            url,
            query: ctx.query,
            raw_query: rawQuery,
            route: ctx.routeKey,
            params: ctx.params,
            headers: req.headers,
            body: ctx.body,
            text: ctx.body === null && !ctx.parts && rawBody.length && rawBody.length <= 4096 ? rawBody.toString('utf8') : undefined,
            body_size: rawBody.length,
            parts: ctx.parts ? ctx.parts.map(summarizePart) : undefined,
            token: ctx.token,
            account: null,
            status: null,
            armed: null,
            duration_ms: null,
        };
        ctx.entry = entry;
        this.record(entry);
        ctx.stat = this.countRequest(ctx.routeKey);
        if (this.config.verbose) {
            process.stderr.write(`fake-sora: ${req.method} ${url}\n`);
        }

        const arm = this.takeArm(ctx);
        if (arm) {
            entry.armed = arm.id;
            ctx.slowBodyMs = arm.slow_body_ms;
            ctx.cutBody = arm.cut_body;
            const fire = () => {
                if (arm.drop) {
                    entry.status = 'dropped';
                    entry.duration_ms = Date.now() - ctx.started;
                    ctx.stat.statuses.dropped = (ctx.stat.statuses.dropped || 0) + 1;
                    req.socket.destroy();
                    return;
                }
                if (arm.hang) {
                    // A black hole: the request was read, no byte of an
                    // answer ever comes; the client has to give up.
                    entry.status = 'hung';
                    ctx.stat.statuses.hung = (ctx.stat.statuses.hung || 0) + 1;
                    req.socket.setTimeout(0);
                    return;
                }
                const desc = this.armResponse(arm);
                if (desc) {
                    this.send(ctx, desc);
                } else {
                    this.runRoute(ctx, route);
                }
            };
            if (arm.delay_ms > 0) {
                this.later(arm.delay_ms, fire);
            } else {
                fire();
            }
            return;
        }
        this.runRoute(ctx, route);
    }

    /* setTimeout that close() can cancel. */
    later(ms, fn) {
        const t = setTimeout(() => {
            this.timers.delete(t);
            try {
                fn();
            } catch (e) {
                process.stderr.write(`fake-sora: ${e.stack}\n`);
            }
        }, ms);
        this.timers.add(t);
    }

    /* Fill ctx.body (JSON or form) or ctx.parts (multipart); errors go to ctx.bodyError. */
    parseBody(ctx, tooBig) {
        if (tooBig) {
            ctx.bodyError = new HttpError(413, 'Request body too large', 'payload_too_large');
            return;
        }
        const ct = (ctx.headers['content-type'] || '').toLowerCase();
        const raw = ctx.rawBody;
        if (ct.startsWith('multipart/')) {
            try {
                ctx.parts = parseMultipart(raw, ctx.headers['content-type']);
            } catch (e) {
                ctx.bodyError = new HttpError(400, `Invalid multipart body: ${e.message}`, 'invalid_multipart');
            }
            return;
        }
        if (raw.length === 0) {
            return;
        }
        if (ct.includes('application/x-www-form-urlencoded')) {
            ctx.body = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
            return;
        }
        const text = raw.toString('utf8');
        const looksJson = /^\s*[[{"]/.test(text);
        if (ct.includes('json') || (looksJson && !ct.includes('html'))) {
            try {
                ctx.body = JSON.parse(text);
            } catch (e) {
                if (ct.includes('json')) {
                    ctx.bodyError = new HttpError(400, 'We could not parse the JSON body of your request.', 'invalid_json');
                }
            }
        }
    }

    runRoute(ctx, route) {
        let desc;
        try {
            if (!route) {
                const other = this.router.find((r) => matchPattern({ ...r.pattern, method: '*' }, ctx.method, ctx.path));
                throw other
                    ? new HttpError(405, `Method ${ctx.req.method} not allowed on ${ctx.path}`, 'method_not_allowed')
                    : new HttpError(404, `Unknown route: ${ctx.req.method} ${ctx.path}`, 'not_found');
            }
            if (route.opts.auth) {
                this.authenticate(ctx);
            }
            if (route.opts.sentinel) {
                this.checkSentinel(ctx);
            }
            if (ctx.bodyError) {
                throw ctx.bodyError;
            }
            desc = this[route.handler](ctx);
        } catch (e) {
            if (!(e instanceof HttpError)) {
                return this.internalError(ctx.res, e);
            }
            desc = { status: e.status, body: e.raw !== undefined ? e.raw : { ...errorEnvelope(e.message, e.code, e.extra.type, e.extra.param, e.status), ...(e.extra.top || {}) } };
            if (e.extra.details) {
                desc.body.error.details = e.extra.details;
            }
        }
        this.send(ctx, desc);
    }

    /*
     * Write a response descriptor: {status, body} (JSON), {status, raw,
     * headers} (bytes) or {status: 204}.  Also finishes the journal entry.
     */
    send(ctx, desc) {
        const res = ctx.res;
        const status = desc.status || 200;
        const entry = ctx.entry;
        if (entry) {
            entry.status = status;
            entry.duration_ms = Date.now() - ctx.started;
            entry.account = ctx.account ? ctx.account.user_id : null;
        }
        if (ctx.stat) {
            ctx.stat.statuses[status] = (ctx.stat.statuses[status] || 0) + 1;
            this.statusCounts[status] = (this.statusCounts[status] || 0) + 1;
        }
        if (res.destroyed || res.headersSent) {
            return;
        }
        const headers = { ...(desc.headers || {}) };
        let payload = null;
        if (desc.raw !== undefined && desc.raw !== null) {
            payload = Buffer.isBuffer(desc.raw) ? desc.raw : Buffer.from(String(desc.raw));
        } else if (status !== 204 && status !== 304) {
            payload = Buffer.from(JSON.stringify(desc.body === undefined ? {} : desc.body));
            if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
                headers['Content-Type'] = 'application/json';
            }
        }
        if (payload) {
            headers['Content-Length'] = payload.length;
        }
        res.writeHead(status, headers);
        if (!payload || ctx.isHead) {
            res.end();
        } else if (ctx.cutBody && payload.length > 1) {
            // The headers and half the body, then the connection breaks.
            res.write(payload.subarray(0, payload.length >> 1), () => res.socket && res.socket.destroy());
        } else if (ctx.slowBodyMs && payload.length > 1) {
            // Slow body: the headers and half the bytes now, the rest later.
            const half = payload.length >> 1;
            res.write(payload.subarray(0, half));
            this.later(ctx.slowBodyMs, () => {
                if (!res.destroyed) {
                    res.end(payload.subarray(half));
                }
            });
        } else if (payload.length > 4 * STREAM_CHUNK) {
            // A large body goes out as the client takes it: a client that
            // stops reading holds the rest back, and one that leaves before
            // the end leaves the response unfinished (counted as aborted).
            let off = 0;
            const pump = () => {
                while (off < payload.length && !res.destroyed) {
                    const end = Math.min(off + STREAM_CHUNK, payload.length);
                    const slice = payload.subarray(off, end);
                    off = end;
                    if (end === payload.length) {
                        res.end(slice);
                    } else if (!res.write(slice)) {
                        res.once('drain', pump);
                        return;
                    }
                }
            };
            pump();
        } else {
            res.end(payload);
        }
    }

    authenticate(ctx) {
        const h = ctx.headers.authorization;
        if (!h || !ctx.token) {
            this.counters.rejected.auth++;
            throw new HttpError(401, MSG.unauthorized);
        }
        const rec = this.tokens.get(ctx.token);
        if (!rec) {
            this.counters.rejected.auth++;
            throw new HttpError(401, MSG.unauthorized);
        }
        ctx.account = rec.account;
        ctx.tokenRec = rec;
        if (rec.revoked) {
            this.counters.rejected.auth++;
            throw new HttpError(401, MSG.invalidated, 'token_invalidated');
        }
        if (this.config.enforce_at_expiry && rec.exp * 1000 <= Date.now()) {
            this.counters.rejected.auth++;
            throw new HttpError(401, MSG.expired, 'token_expired');
        }
    }

    checkSentinel(ctx) {
        const mode = this.config.sentinel;
        if (mode === 'off') {
            return;
        }
        const v = ctx.headers['openai-sentinel-token'];
        if (!v || !String(v).trim()) {
            this.counters.rejected.sentinel++;
            throw new HttpError(400, 'Missing openai-sentinel-token header', 'invalid_sentinel');
        }
        if (mode === 'json') {
            let t = null;
            try {
                t = JSON.parse(v);
            } catch (e) { /* fall through */ }
            const ok = isObject(t) && typeof t.p === 'string' && t.p.length > 0
                && typeof t.c === 'string' && typeof t.flow === 'string' && t.flow.length > 0;
            if (!ok) {
                this.counters.rejected.sentinel++;
                throw new HttpError(400, 'Invalid sentinel token', 'invalid_sentinel');
            }
        }
    }
}

/* ======================================================================
 * Handler helpers
 * ==================================================================== */

function bad(message, code = 'invalid_request', param = null) {
    return new HttpError(400, message, code, { param });
}

function requireObject(ctx) {
    if (!isObject(ctx.body)) {
        throw bad('Request body must be a JSON object', 'invalid_json');
    }
    return ctx.body;
}

/* `limit` query parameter: default when absent, 400 when not a positive integer, clamped. */
function limitOf(ctx, dflt, max) {
    const raw = ctx.query.limit;
    if (raw === undefined || raw === '') {
        return Math.min(dflt, max);
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) {
        throw bad(`Invalid limit: ${raw}`, 'invalid_limit', 'limit');
    }
    return Math.min(n, max);
}

/* Cursors are opaque to clients; here they are base64 of {"offset": n} (as in example X29). */
function cursorOffset(ctx) {
    const raw = ctx.query.cursor;
    if (raw === undefined || raw === '') {
        return 0;
    }
    try {
        const v = JSON.parse(Buffer.from(String(raw), 'base64').toString('utf8'));
        if (isObject(v) && Number.isInteger(v.offset) && v.offset >= 0) {
            return v.offset;
        }
    } catch (e) { /* fall through */ }
    throw bad('Invalid cursor', 'invalid_cursor', 'cursor');
}

function makeCursor(offset) {
    return Buffer.from(JSON.stringify({ offset })).toString('base64');
}

function partNamed(ctx, name) {
    return ctx.parts ? ctx.parts.find((p) => p.name === name) || null : null;
}

function requireMultipart(ctx) {
    if (!ctx.parts) {
        throw bad('Expected a multipart/form-data body', 'invalid_content_type');
    }
}

function checkInstructionSet(v, name) {
    if (v === undefined || v === null) {
        return null;
    }
    const ok = isObject(v) && Array.isArray(v.value) && v.value.length > 0
        && v.value.every((x) => isObject(x) && x.type === 'text' && typeof x.value === 'string');
    if (!ok) {
        throw bad(`${name} must be {"value":[{"type":"text","value":"..."}]} or null`, 'invalid_instruction_set', name);
    }
    return v;
}

/*
 * Parse a storyboard prompt as the gateway formats it (protocol doc E14):
 *   [current timeline:\n]Shot 1:\nduration: 5sec\nScene: ...\n\nShot 2:...[\n\ninstructions:\n...]
 * Returns {shots: [{index, duration_s, scene}], instructions, timeline_header}.
 */
function parseStoryboard(prompt) {
    const header = prompt.startsWith('current timeline:\n');
    let body = header ? prompt.slice('current timeline:\n'.length) : prompt;
    let instructions = null;
    const ins = body.indexOf('\n\ninstructions:\n');
    if (ins >= 0) {
        instructions = body.slice(ins + '\n\ninstructions:\n'.length);
        body = body.slice(0, ins);
    }
    const shots = [];
    const re = /Shot (\d+):\nduration: (\d+(?:\.\d+)?)sec\nScene: ([\s\S]*?)(?=\n\nShot \d+:\n|$)/g;
    let m;
    let consumed = 0;
    while ((m = re.exec(body)) !== null) {
        if (m.index !== consumed) {
            break; // junk between shots: treat the rest as unparsed
        }
        shots.push({ index: Number(m[1]), duration_s: Number(m[2]), scene: m[3] });
        consumed = re.lastIndex + (body.startsWith('\n\n', re.lastIndex) ? 2 : 0);
        if (m[0].length === 0) {
            break;
        }
    }
    return { shots, instructions, timeline_header: header, fully_parsed: consumed >= body.length && shots.length > 0 };
}

const ANIMAL_NAMES = {
    fluffycat: 'Fluffy Cat', sleepyfox: 'Sleepy Fox', bravepanda: 'Brave Panda',
    tinyotter: 'Tiny Otter', jollyowl: 'Jolly Owl', quietwolf: 'Quiet Wolf',
};

/* ======================================================================
 * Backend, auth and media handlers (methods of FakeSora)
 * ==================================================================== */

const handlers = {
    /* ---------------------------------------------------------------- auth */

    /* A1: NextAuth session -> {user, expires, accessToken}; unknown ST -> 200 {}. */
    authSession(ctx) {
        const cookies = parseCookies(ctx.headers.cookie);
        const name = '__Secure-next-auth.session-token';
        let st = cookies[name];
        if (st === undefined && cookies[name + '.0'] !== undefined) {
            // NextAuth splits big cookies into numbered chunks.
            st = '';
            for (let i = 0; cookies[`${name}.${i}`] !== undefined; i++) {
                st += cookies[`${name}.${i}`];
            }
        }
        const a = st ? this.sessions.get(st) : undefined;
        if (!a) {
            return { status: 200, body: {} };
        }
        const rec = this.issueAccessToken(a);
        return {
            status: 200,
            headers: { 'Set-Cookie': `${name}=${st}; Path=/; HttpOnly; Secure; SameSite=Lax` },
            body: {
                user: { id: a.user_id, name: a.name, email: a.email, image: null, picture: null, idp: 'auth0', iat: rec.issued_at, mfa: false, groups: [] },
                expires: new Date(rec.exp * 1000).toISOString(),
                accessToken: rec.token,
                authProvider: 'openai',
            },
        };
    },

    /* A2: refresh_token grant with rotation; unknown/used RT -> 401 invalid_grant. */
    oauthToken(ctx) {
        const b = ctx.body;
        if (!isObject(b)) {
            return { status: 400, body: { error: 'invalid_request', error_description: 'Expected a JSON or form body.' } };
        }
        if (b.grant_type !== 'refresh_token') {
            return { status: 400, body: { error: 'unsupported_grant_type', error_description: `Unsupported grant_type: ${b.grant_type}` } };
        }
        if (typeof b.client_id !== 'string' || !b.client_id) {
            return { status: 400, body: { error: 'invalid_request', error_description: 'Missing client_id.' } };
        }
        const a = typeof b.refresh_token === 'string' ? this.refreshTokens.get(b.refresh_token) : undefined;
        if (!a) {
            return { status: 401, body: { error: 'invalid_grant', error_description: 'Refresh token is invalid or expired.' } };
        }
        const rec = this.issueAccessToken(a);
        const out = {
            access_token: rec.token,
            id_token: makeJwt({ aud: [b.client_id], email: a.email, exp: rec.exp, iat: rec.issued_at, iss: 'https://auth.openai.com', sub: 'auth0|' + a.user_id.slice(5) }),
            expires_in: Math.max(0, rec.exp - rec.issued_at),
            scope: 'openid profile email offline_access',
            token_type: 'bearer',
        };
        if (this.config.rotate_refresh_tokens) {
            out.refresh_token = this.setRefreshToken(a);
        }
        return { status: 200, body: out };
    },

    /* L1: sentinel challenge for the later client. */
    sentinelReq(ctx) {
        const b = ctx.body;
        if (!isObject(b) || typeof b.p !== 'string' || typeof b.flow !== 'string') {
            throw bad('Expected {"p": ..., "flow": ..., "id": ...}', 'invalid_request');
        }
        this.sentinelChallenges++;
        return {
            status: 200,
            body: {
                persona: 'chatgpt-paid',
                token: 'gAAAAAB' + Buffer.from(randBytes(48)).toString('base64url'),
                turnstile: { required: false, dx: '' },
                proofofwork: {
                    required: !!this.config.sentinel_pow_required,
                    seed: String(Math.random()),
                    difficulty: this.config.sentinel_pow_difficulty,
                },
            },
        };
    },

    /* ------------------------------------------------- account and quota */

    me(ctx) {
        const a = ctx.account;
        return {
            status: 200,
            body: {
                id: a.user_id, email: a.email, name: a.name, username: a.username,
                profile_picture_url: a.profile_picture_path ? ctx.base + a.profile_picture_path : null,
            },
        };
    },

    subscriptions(ctx) {
        const a = ctx.account;
        if (a.billing_token_expired) {
            throw new HttpError(401, MSG.expired, 'token_expired');
        }
        if (!a.plan) {
            return { status: 200, body: { object: 'list', data: [] } };
        }
        return {
            status: 200,
            body: {
                object: 'list',
                data: [{
                    id: 'sub_' + stableHex(a.user_id, 12), plan: { id: a.plan.id, title: a.plan.title },
                    start_ts: isoNoMs(a.plan_end_ms - 30 * 86400e3), end_ts: isoNoMs(a.plan_end_ms),
                }],
            },
        };
    },

    inviteMine(ctx) {
        const a = ctx.account;
        if (a.country_blocked) {
            throw new HttpError(403, 'Sora is not available in your country.', 'unsupported_country_code', { param: a.country_blocked });
        }
        if (!a.sora2_activated) {
            throw new HttpError(401, MSG.unauthorized);
        }
        return { status: 200, body: { invite_code: a.invite_code, redeemed_count: a.redeemed_count, total_count: a.total_count } };
    },

    bootstrap(ctx) {
        const a = ctx.account;
        a.bootstrap_calls++;
        if (!a.sora2_activated && a.bootstrap_activates && !a.country_blocked) {
            a.sora2_activated = true;
        }
        return { status: 200, body: { ok: true } };
    },

    inviteAccept(ctx) {
        const a = ctx.account;
        const b = requireObject(ctx);
        if (typeof b.invite_code !== 'string' || !b.invite_code.trim()) {
            throw bad('invite_code is required', 'invalid_invite_code', 'invite_code');
        }
        const code = b.invite_code.trim().toUpperCase();
        if (a.sora2_activated) {
            return { status: 200, body: { success: true, already_accepted: true } };
        }
        const inviter = this.inviteCodes.get(code);
        const universal = (this.config.valid_invite_codes || []).map((c) => String(c).toUpperCase()).includes(code);
        if (!universal && (!inviter || inviter === a)) {
            throw bad('Invalid invite code', 'invalid_invite_code', 'invite_code');
        }
        if (!universal && inviter.redeemed_count >= inviter.total_count) {
            throw bad('This invite code has already been fully redeemed', 'invite_code_exhausted', 'invite_code');
        }
        if (!universal) {
            inviter.redeemed_count++;
        }
        a.sora2_activated = true;
        return { status: 200, body: { success: true, already_accepted: false } };
    },

    nfCheck(ctx) {
        return { status: 200, body: { rate_limit_and_credit_balance: this.quotaView(ctx.account) } };
    },

    usernameCheck(ctx) {
        const b = requireObject(ctx);
        if (typeof b.username !== 'string') {
            throw bad('username is required', 'invalid_username', 'username');
        }
        const name = b.username;
        if (this.config.username_check_taken_first > 0) {
            this.config.username_check_taken_first--;
            return { status: 200, body: { available: false } };
        }
        return { status: 200, body: { available: USERNAME_RE.test(name) && !this.usernames.has(name.toLowerCase()) } };
    },

    usernameSet(ctx) {
        const a = ctx.account;
        const b = requireObject(ctx);
        const name = b.username;
        if (typeof name !== 'string' || !USERNAME_RE.test(name)) {
            throw bad('Usernames are 3-30 characters: lower-case letters, digits, "." and "_"', 'invalid_username', 'username');
        }
        const owner = this.usernames.get(name);
        if (owner && owner.ref !== a) {
            throw bad('This username is already taken', 'username_taken', 'username');
        }
        if (a.username && a.username !== name) {
            this.usernames.delete(a.username);
        }
        a.username = name;
        this.usernames.set(name, { kind: 'account', ref: a });
        return { status: 200, body: { user_id: a.user_id, username: name } };
    },

    /* --------------------------------------------------------- uploads */

    upload(ctx) {
        requireMultipart(ctx);
        const file = partNamed(ctx, 'file');
        if (!file || file.size === 0) {
            throw bad('No file provided', 'missing_file', 'file');
        }
        const kind = sniffMedia(file.data);
        if (this.config.validate_uploads && !['png', 'jpeg', 'webp', 'gif'].includes(kind)) {
            throw bad('Invalid image', 'invalid_file', 'file');
        }
        const nameField = partNamed(ctx, 'file_name');
        const dims = pngSize(file.data) || { width: 512, height: 512 };
        const up = {
            id: 'media_' + ulid(),
            owner: ctx.account,
            filename: nameField ? nameField.data.toString('utf8') : file.filename,
            part_filename: file.filename,
            content_type: file.content_type,
            sniffed: kind,
            size: file.size,
            sha256: sha256hex(file.data),
            width: dims.width,
            height: dims.height,
            created_at: Date.now(),
        };
        this.uploads.set(up.id, up);
        this.counters.uploads++;
        return { status: 200, body: { id: up.id, type: 'image', filename: up.filename, width: up.width, height: up.height } };
    },

    /* ------------------------------------------------------------ images */

    /* E10: image generation task. */
    videoGen(ctx) {
        const a = ctx.account;
        const b = requireObject(ctx);
        if (b.type !== 'image_gen') {
            throw bad(`Unsupported type: ${b.type}`, 'invalid_type', 'type');
        }
        if (b.operation !== 'simple_compose' && b.operation !== 'remix') {
            throw bad(`Unsupported operation: ${b.operation}`, 'invalid_operation', 'operation');
        }
        if (typeof b.prompt !== 'string' || !b.prompt.trim()) {
            throw bad('prompt is required', 'invalid_prompt', 'prompt');
        }
        for (const k of ['width', 'height']) {
            if (!Number.isInteger(b[k]) || b[k] < 64 || b[k] > 4096) {
                throw bad(`${k} must be an integer between 64 and 4096`, 'invalid_size', k);
            }
        }
        const nVariants = b.n_variants === undefined ? 1 : b.n_variants;
        if (!Number.isInteger(nVariants) || nVariants < 1 || nVariants > 4) {
            throw bad('n_variants must be 1..4', 'invalid_n_variants', 'n_variants');
        }
        if (b.n_frames !== undefined && b.n_frames !== 1) {
            throw bad('n_frames must be 1 for images', 'invalid_n_frames', 'n_frames');
        }
        const items = b.inpaint_items === undefined || b.inpaint_items === null ? [] : b.inpaint_items;
        if (!Array.isArray(items)) {
            throw bad('inpaint_items must be an array', 'invalid_inpaint_items', 'inpaint_items');
        }
        for (const it of items) {
            if (!isObject(it) || it.type !== 'image' || !Number.isInteger(it.frame_index) || typeof it.upload_media_id !== 'string') {
                throw bad('inpaint_items entries must be {"type":"image","frame_index":0,"upload_media_id":"media_..."}', 'invalid_inpaint_items', 'inpaint_items');
            }
            const up = this.uploads.get(it.upload_media_id);
            if (!up || up.owner !== a) {
                throw bad(`Unknown upload: ${it.upload_media_id}`, 'invalid_upload', 'inpaint_items');
            }
        }
        if (b.operation === 'remix' && items.length === 0) {
            throw bad('operation "remix" needs an inpaint item', 'invalid_operation', 'operation');
        }
        const { script, submit } = this.resolveScript('image', b.prompt);
        if (submit) {
            return { status: submit.status || 400, body: submit.body || errorEnvelope('Rejected', 'rejected') };
        }
        const now = Date.now();
        const task = {
            id: 'task_' + ulid(now), kind: 'image', owner: a, created_at: now, prompt: b.prompt,
            operation: b.operation, width: b.width, height: b.height, n_variants: nVariants,
            inpaint_items: items, request: b, script, polls: 0,
            status: 'processing', progress_pct: 0, generations: [], error_message: null, finished_at: null,
        };
        this.tasks.set(task.id, task);
        a.imageTasks.push(task);
        this.counters.tasks_created.image++;
        return { status: 200, body: { id: task.id, status: 'queued', type: 'image_gen' } };
    },

    /* E11: the owner's latest image tasks; each read advances "polls" scripts. */
    recentTasks(ctx) {
        const a = ctx.account;
        const limit = limitOf(ctx, 20, this.config.max_page_size);
        const now = Date.now();
        const out = [];
        for (let i = a.imageTasks.length - 1; i >= 0 && out.length < limit; i--) {
            const t = a.imageTasks[i];
            if (this.imageStep(t, now)) {
                out.push(this.renderImageTask(ctx, t));
            }
        }
        return { status: 200, body: { task_responses: out, last_id: out.length ? out[out.length - 1].id : null } };
    },

    /* ------------------------------------------------------------ videos */

    nfCreate(ctx) {
        return this.createVideo(ctx, false);
    },

    nfCreateStoryboard(ctx) {
        return this.createVideo(ctx, true);
    },

    /* E15: bare array of the owner's running video tasks; advances "polls" scripts. */
    pending(ctx) {
        const a = ctx.account;
        const now = Date.now();
        const out = [];
        for (const t of a.running.values()) {
            const pct = this.pendingStep(t, now);
            if (pct !== undefined) {
                t.progress_pct = pct;
                out.push({
                    id: t.id, task_type: 'video_gen', status: pct === null ? 'queued' : 'running',
                    progress_pct: pct, prompt: t.prompt, title: t.title, failure_reason: null,
                    generations: [], created_at: t.created_at / 1000,
                });
            }
        }
        out.reverse(); // newest first
        return { status: 200, body: out };
    },

    /* E16: finished drafts, newest first, `limit` + offset cursor. */
    draftsList(ctx) {
        const a = ctx.account;
        const limit = limitOf(ctx, 15, this.config.max_page_size);
        const offset = cursorOffset(ctx);
        const now = Date.now();
        this.settleSeconds(a, now);
        for (const d of a.hiddenDrafts) {
            if (d.task.script.mode === 'seconds') {
                if (now >= d.visible_at) {
                    a.hiddenDrafts.delete(d);
                }
            } else if (d.hidden_reads > 0) {
                d.hidden_reads--;
            } else {
                a.hiddenDrafts.delete(d);
            }
        }
        const items = [];
        let seen = 0;
        let more = false;
        for (let i = a.drafts.length - 1; i >= 0; i--) {
            const d = a.drafts[i];
            if (a.hiddenDrafts.has(d)) {
                continue;
            }
            if (seen++ < offset) {
                continue;
            }
            if (items.length === limit) {
                more = true;
                break;
            }
            items.push(this.renderDraft(ctx, d));
        }
        return { status: 200, body: { items, cursor: more ? makeCursor(offset + limit) : null } };
    },

    /* ------------------------------------------------------ publishing */

    /* E17: publish a draft as a post s_<32hex>. */
    postCreate(ctx) {
        const a = ctx.account;
        const b = requireObject(ctx);
        const list = b.attachments_to_create;
        if (!Array.isArray(list) || list.length === 0) {
            throw bad('attachments_to_create must be a non-empty array', 'invalid_attachments', 'attachments_to_create');
        }
        const att = list[0];
        if (!isObject(att) || att.kind !== 'sora' || typeof att.generation_id !== 'string') {
            throw bad('attachments must be {"generation_id": "gen_...", "kind": "sora"}', 'invalid_attachments', 'attachments_to_create');
        }
        if (b.post_text !== undefined && typeof b.post_text !== 'string') {
            throw bad('post_text must be a string', 'invalid_post_text', 'post_text');
        }
        const d = this.drafts.get(att.generation_id);
        if (!d || d.owner !== a) {
            throw new HttpError(404, `Generation not found: ${att.generation_id}`, 'not_found', { param: 'generation_id' });
        }
        if (d.outcome !== 'success') {
            throw bad('This generation cannot be posted', 'generation_not_postable', 'generation_id');
        }
        const post = this.createPost(a, { draft: d, text: b.post_text || '' });
        d.post_id = post.id;
        return { status: 200, body: { post: this.renderPost(ctx, post) } };
    },

    /* E18 */
    postDelete(ctx) {
        const p = this.posts.get(ctx.params.id);
        if (!p) {
            throw new HttpError(404, 'Post not found', 'not_found');
        }
        if (p.owner !== ctx.account) {
            throw new HttpError(403, 'You cannot delete this post', 'forbidden');
        }
        this.posts.delete(p.id);
        const idx = p.owner.posts.indexOf(p.id);
        if (idx >= 0) {
            p.owner.posts.splice(idx, 1);
        }
        this.counters.posts_deleted++;
        return { status: 204 };
    },

    /* ------------------------------------------------------ characters */

    /* E21: source video for a cameo. */
    characterUpload(ctx) {
        const a = ctx.account;
        requireMultipart(ctx);
        const file = partNamed(ctx, 'file');
        if (!file || file.size === 0) {
            throw bad('No file provided', 'missing_file', 'file');
        }
        const kind = sniffMedia(file.data);
        if (this.config.validate_uploads && kind !== 'mp4' && kind !== 'webm') {
            throw bad('Invalid video', 'invalid_file', 'file');
        }
        const ts = partNamed(ctx, 'timestamps');
        if (!ts) {
            throw bad('timestamps is required', 'invalid_timestamps', 'timestamps');
        }
        const tsText = ts.data.toString('utf8');
        const nums = tsText.split(',').map((s) => Number(s.trim()));
        if (nums.length !== 2 || nums.some((x) => !Number.isFinite(x) || x < 0) || nums[1] <= nums[0]) {
            throw bad('timestamps must be "start,end" seconds with start < end', 'invalid_timestamps', 'timestamps');
        }
        const { script } = this.resolveScript('cameo', null);
        const id = hex(16);
        const animal = ANIMALS[parseInt(id.slice(0, 2), 16) % ANIMALS.length];
        const cameo = {
            id, owner: a, created_at: Date.now(), script, polls: 0, status: 'processing',
            timestamps: tsText, timestamps_parsed: nums,
            file: { filename: file.filename, content_type: file.content_type, size: file.size, sha256: sha256hex(file.data) },
            username_hint: script.username_hint || `${a.username || 'user'}.${animal}`,
            display_name_hint: script.display_name_hint || ANIMAL_NAMES[animal],
            instruction_set_hint: script.instruction_set_hint !== undefined ? script.instruction_set_hint
                : `A ${ANIMAL_NAMES[animal].toLowerCase()} from the uploaded video.`,
            profile_asset_path: `/media/avatar/cameo_${id.slice(0, 8)}.webp`,
            visibility: 'private', instruction_set: null, safety_instruction_set: null, character_id: null,
        };
        this.cameos.set(id, cameo);
        this.counters.cameos_created++;
        return { status: 200, body: { id, status: 'processing' } };
    },

    /* E22: cameo processing status; each read advances "polls" scripts. */
    cameoInProgress(ctx) {
        const c = this.cameos.get(ctx.params.id);
        if (!c || c.owner !== ctx.account) {
            throw new HttpError(404, 'Cameo not found', 'not_found');
        }
        this.cameoStep(c, Date.now());
        const ended = c.status === 'failed' || c.status === 'rejected';
        const done = c.status !== 'processing' && !ended;
        const asset = c.script.outcome === 'bad_asset' ? c.profile_asset_path.replace('/media/avatar/', '/media/missing/')
            : c.profile_asset_path;
        return {
            status: 200,
            body: {
                id: c.id,
                status: c.status,
                status_message: ended ? c.status_message : done ? 'Completed' : 'Processing',
                username_hint: done ? c.username_hint : null,
                display_name_hint: done ? c.display_name_hint : null,
                profile_asset_url: done && c.script.outcome !== 'no_asset' ? ctx.base + asset : null,
                instruction_set_hint: done ? c.instruction_set_hint : null,
            },
        };
    },

    /* E24: avatar (or inpaint) file upload. */
    fileUpload(ctx) {
        requireMultipart(ctx);
        const file = partNamed(ctx, 'file');
        if (!file || file.size === 0) {
            throw bad('No file provided', 'missing_file', 'file');
        }
        const useCase = partNamed(ctx, 'use_case');
        if (!useCase || !useCase.data.length) {
            throw bad('use_case is required', 'invalid_use_case', 'use_case');
        }
        const kind = sniffMedia(file.data);
        if (this.config.validate_uploads && !['png', 'jpeg', 'webp', 'gif'].includes(kind)) {
            throw bad('Invalid image', 'invalid_file', 'file');
        }
        const fileId = 'file_' + hex(10);
        const ext = kind === 'jpeg' ? 'jpg' : (kind || 'bin');
        const f = {
            file_id: fileId, owner: ctx.account, use_case: useCase.data.toString('utf8'),
            filename: file.filename, content_type: file.content_type, size: file.size,
            sha256: sha256hex(file.data), path: `/media/${fileId}.${ext}`,
        };
        this.files.set(fileId, f);
        this.counters.files++;
        return {
            status: 200,
            body: { file_id: fileId, asset_pointer: `sediment://${fileId}`, url: ctx.base + f.path, size: f.size },
        };
    },

    /* E25: turn a processed cameo into a character ch_<32hex>. */
    characterFinalize(ctx) {
        const a = ctx.account;
        const b = requireObject(ctx);
        const c = typeof b.cameo_id === 'string' ? this.cameos.get(b.cameo_id) : null;
        if (!c || c.owner !== a) {
            throw new HttpError(404, `Cameo not found: ${b.cameo_id}`, 'not_found', { param: 'cameo_id' });
        }
        if (c.status === 'processing') {
            throw bad('Cameo is still processing', 'cameo_not_ready', 'cameo_id');
        }
        if (c.character_id) {
            throw bad('Cameo is already finalized', 'cameo_already_finalized', 'cameo_id');
        }
        if (typeof b.username !== 'string' || !USERNAME_RE.test(b.username)) {
            throw bad('Invalid username', 'invalid_username', 'username');
        }
        if (this.usernames.has(b.username)) {
            throw bad('This username is already taken', 'username_taken', 'username');
        }
        if (typeof b.display_name !== 'string' || !b.display_name.trim()) {
            throw bad('display_name is required', 'invalid_display_name', 'display_name');
        }
        const ptr = b.profile_asset_pointer;
        const fileId = typeof ptr === 'string' && ptr.startsWith('sediment://') ? ptr.slice('sediment://'.length) : null;
        const f = fileId ? this.files.get(fileId) : null;
        if (!f || f.owner !== a) {
            throw bad('profile_asset_pointer must be a sediment:// pointer from file/upload', 'invalid_asset_pointer', 'profile_asset_pointer');
        }
        const ins = checkInstructionSet(b.instruction_set, 'instruction_set');
        const safety = checkInstructionSet(b.safety_instruction_set, 'safety_instruction_set');
        const ch = {
            character_id: 'ch_' + hex(16), cameo_id: c.id, owner: a, username: b.username,
            display_name: b.display_name, visibility: 'private', instruction_set: ins,
            safety_instruction_set: safety, profile_asset_pointer: ptr, profile_picture_path: f.path,
            created_at: Date.now(),
        };
        this.characters.set(ch.character_id, ch);
        this.usernames.set(ch.username, { kind: 'character', ref: ch });
        c.character_id = ch.character_id;
        c.status = 'finalized';
        c.instruction_set = ins;
        c.safety_instruction_set = safety;
        this.counters.characters_created++;
        return {
            status: 200,
            body: {
                character: {
                    character_id: ch.character_id, cameo_id: c.id, username: ch.username,
                    display_name: ch.display_name, visibility: ch.visibility,
                },
            },
        };
    },

    /* E26 */
    cameoUpdate(ctx) {
        const c = this.cameos.get(ctx.params.id);
        if (!c || c.owner !== ctx.account) {
            throw new HttpError(404, 'Cameo not found', 'not_found');
        }
        const b = requireObject(ctx);
        if (b.visibility !== undefined && b.visibility !== 'public' && b.visibility !== 'private') {
            throw bad('visibility must be "public" or "private"', 'invalid_visibility', 'visibility');
        }
        if (b.display_name !== undefined && (typeof b.display_name !== 'string' || !b.display_name.trim())) {
            throw bad('display_name must be a non-empty string', 'invalid_display_name', 'display_name');
        }
        const ins = b.instruction_set !== undefined ? checkInstructionSet(b.instruction_set, 'instruction_set') : undefined;
        const safety = b.safety_instruction_set !== undefined
            ? checkInstructionSet(b.safety_instruction_set, 'safety_instruction_set') : undefined;
        if (b.visibility !== undefined) {
            c.visibility = b.visibility;
        }
        if (ins !== undefined) {
            c.instruction_set = ins;
        }
        if (safety !== undefined) {
            c.safety_instruction_set = safety;
        }
        if (b.display_name !== undefined) {
            c.display_name = b.display_name;
        }
        const ch = c.character_id ? this.characters.get(c.character_id) : null;
        if (ch) {
            if (b.display_name !== undefined) {
                ch.display_name = b.display_name;
            }
            ch.visibility = c.visibility;
            ch.instruction_set = c.instruction_set;
            ch.safety_instruction_set = c.safety_instruction_set;
        }
        c.updates = (c.updates || 0) + 1;
        return {
            status: 200,
            body: {
                cameo: {
                    id: c.id, visibility: c.visibility, instruction_set: c.instruction_set,
                    safety_instruction_set: c.safety_instruction_set, character_id: c.character_id,
                    display_name: ch ? ch.display_name : (c.display_name || null),
                },
            },
        };
    },

    /* E27 */
    characterDelete(ctx) {
        const ch = this.characters.get(ctx.params.id);
        if (!ch || ch.owner !== ctx.account) {
            throw new HttpError(404, 'Character not found', 'not_found');
        }
        this.characters.delete(ch.character_id);
        const u = this.usernames.get(ch.username);
        if (u && u.ref === ch) {
            this.usernames.delete(ch.username);
        }
        this.counters.characters_deleted++;
        return { status: 204 };
    },

    /* ------------------------------------------------------ public data */

    /* E28 */
    profileByUsername(ctx) {
        const u = this.usernames.get(String(ctx.params.username).toLowerCase());
        if (!u || !u.ref) {
            throw new HttpError(404, 'User not found', 'not_found');
        }
        return { status: 200, body: this.profileOf(ctx, u.ref) };
    },

    /* E29/E30: a user's posts, newest first, cursor pagination. */
    profileFeed(ctx) {
        const id = ctx.params.id;
        const owner = id === 'me' ? ctx.account : this.byUserId.get(id);
        if (!owner) {
            throw new HttpError(404, 'User not found', 'not_found');
        }
        const limit = limitOf(ctx, 20, this.config.max_page_size);
        const offset = cursorOffset(ctx);
        const ids = owner.posts;
        const items = [];
        for (let i = ids.length - 1 - offset; i >= 0 && items.length < limit; i--) {
            const p = this.posts.get(ids[i]);
            items.push({ post: this.renderPost(ctx, p), profile: this.shortProfile(ctx, owner) });
        }
        const more = ids.length - offset > limit;
        return { status: 200, body: { items, cursor: more ? makeCursor(offset + limit) : null } };
    },

    /* E31: users and characters whose username starts with `username`. */
    searchMentions(ctx) {
        const q = String(ctx.query.username || '').toLowerCase();
        const intent = ctx.query.intent || 'users';
        if (intent !== 'users' && intent !== 'cameo') {
            throw bad(`Invalid intent: ${intent}`, 'invalid_intent', 'intent');
        }
        const limit = limitOf(ctx, 10, this.config.max_page_size);
        const found = [];
        for (const [name, u] of this.usernames) {
            if (!u.ref || !name.startsWith(q)) {
                continue;
            }
            const isChar = u.kind === 'character';
            const prof = isChar ? this.profileOf(ctx, u.ref) : { ...this.shortProfile(ctx, u.ref), can_cameo: u.ref.can_cameo };
            if (intent === 'cameo' && !prof.can_cameo) {
                continue;
            }
            found.push({ token: `<@${prof.user_id}>`, profile: {
                user_id: prof.user_id, username: prof.username, display_name: prof.display_name,
                profile_picture_url: prof.profile_picture_url, permalink: prof.permalink,
                can_cameo: prof.can_cameo, verified: prof.verified, follower_count: prof.follower_count,
                ...(isChar ? { owner_profile: prof.owner_profile } : {}),
            } });
        }
        found.sort((x, y) => (x.profile.username === q ? -1 : 0) - (y.profile.username === q ? -1 : 0)
            || x.profile.username.localeCompare(y.profile.username));
        return { status: 200, body: { items: found.slice(0, limit) } };
    },

    /* E32: public feed; `cut` picks the ordering. */
    feed(ctx) {
        const cut = ctx.query.cut || 'nf2';
        const limit = limitOf(ctx, 20, this.config.max_page_size);
        const offset = cursorOffset(ctx);
        const all = [...this.posts.values()];
        const byTime = (x, y) => y.posted_at - x.posted_at || y.seq - x.seq;
        if (cut === 'nf2_top') {
            all.sort((x, y) => y.like_count - x.like_count || byTime(x, y));
        } else if (cut === 'nf2_latest') {
            all.sort(byTime);
        } else {
            // "nf2" (for you) and anything else: most viewed first.
            all.sort((x, y) => y.view_count - x.view_count || byTime(x, y));
        }
        const page = all.slice(offset, offset + limit);
        return {
            status: 200,
            body: {
                items: page.map((p) => ({ post: this.renderPost(ctx, p), profile: this.shortProfile(ctx, p.owner) })),
                cursor: all.length > offset + limit ? makeCursor(offset + limit) : null,
            },
        };
    },

    /* L2 */
    enhancePrompt(ctx) {
        const b = requireObject(ctx);
        if (typeof b.prompt !== 'string' || !b.prompt.trim()) {
            throw bad('prompt is required', 'invalid_prompt', 'prompt');
        }
        const level = b.expansion_level || 'medium';
        if (!['short', 'medium', 'long'].includes(level)) {
            throw bad('expansion_level must be short, medium or long', 'invalid_expansion_level', 'expansion_level');
        }
        if (b.duration_s !== undefined && b.duration_s !== null && !Number.isInteger(b.duration_s)) {
            throw bad('duration_s must be an integer', 'invalid_duration', 'duration_s');
        }
        const extra = { short: 'cinematic lighting.', medium: 'cinematic lighting, shallow depth of field, golden hour.', long: 'cinematic lighting, shallow depth of field, golden hour, slow dolly-in, rich ambient sound, film grain.' }[level];
        return { status: 200, body: { enhanced_prompt: `${b.prompt.trim()}, ${extra}` } };
    },

    /* -------------------------------------------- watermark-free, media */

    /* E19: custom parse server. */
    getSoraLink(ctx) {
        const b = ctx.body;
        if (!isObject(b)) {
            return { status: 400, body: { error: 'invalid request body' } };
        }
        if (b.token !== this.config.parse_token) {
            return { status: 200, body: { error: 'invalid token' } };
        }
        const m = /^https:\/\/sora\.chatgpt\.com\/p\/(s_[0-9a-f]{32})\/?$/.exec(String(b.url || ''));
        if (!m) {
            return { status: 200, body: { error: 'invalid url' } };
        }
        if (this.config.watermark_free_requires_post && !this.posts.has(m[1])) {
            return { status: 200, body: { error: 'post not found' } };
        }
        return { status: 200, body: { download_link: `${ctx.base}/MP4/${m[1]}.mp4` } };
    },

    /* E20: third-party watermark-free CDN. */
    thirdPartyMp4(ctx) {
        const m = /^(s_[0-9a-f]{32})\.mp4$/.exec(ctx.params.file);
        if (!m || (this.config.watermark_free_requires_post && !this.posts.has(m[1]))) {
            return { status: 404, body: { error: 'not found' } };
        }
        return this.serveMedia(ctx, 'mp4');
    },

    /* E23/E33/E34: any /media/... path serves bytes of the type its extension names. */
    media(ctx) {
        const dot = ctx.path.lastIndexOf('.');
        const t = dot >= 0 ? MEDIA_TYPES[ctx.path.slice(dot + 1).toLowerCase()] : null;
        // /media/missing/... is a file that is gone (a cameo's bad_asset avatar).
        if (!t || ctx.path.startsWith('/media/missing/')) {
            return { status: 404, body: { error: 'not found' } };
        }
        if (typeof ctx.query.se === 'string' && !(Date.parse(ctx.query.se) > Date.now())) {
            // An expired (or unreadable) signature, as Azure blob storage answers it.
            this.counters.media.expired++;
            return {
                status: 403, headers: { 'Content-Type': 'application/xml' },
                raw: '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
                    + '<Message>Signed expiry time has passed.</Message></Error>',
            };
        }
        const big = t[1] === 'mp4' && ctx.path.startsWith('/media/vid/') && this.config.video_bytes;
        return this.serveMedia(ctx, t[1], big ? bigMp4(Number(this.config.video_bytes)) : undefined);
    },
};

/* Video, image and cameo lifecycles (also methods of FakeSora). */
const lifecycle = {
    /*
     * nf/create and nf/create/storyboard: validate the body (protocol doc
     * E12-E14), apply the prompt's script, enforce concurrency and quota.
     */
    createVideo(ctx, storyboard) {
        const a = ctx.account;
        const b = requireObject(ctx);
        if (b.kind !== 'video') {
            throw bad(`Unsupported kind: ${b.kind}`, 'invalid_kind', 'kind');
        }
        const remixId = b.remix_target_id === undefined ? null : b.remix_target_id;
        if (typeof b.prompt !== 'string' || (!b.prompt.trim() && remixId === null)) {
            throw bad('prompt is required', 'invalid_prompt', 'prompt');
        }
        if (b.orientation !== 'landscape' && b.orientation !== 'portrait') {
            throw bad('orientation must be "landscape" or "portrait"', 'invalid_orientation', 'orientation');
        }
        if (!N_FRAMES.includes(b.n_frames)) {
            throw bad(`n_frames must be one of ${N_FRAMES.join(', ')}`, 'invalid_n_frames', 'n_frames');
        }
        if (typeof b.model !== 'string' || !this.config.models.includes(b.model)) {
            throw bad(`Unknown model: ${b.model}`, 'invalid_model', 'model');
        }
        if (b.size !== undefined && b.size !== null && b.size !== 'small' && b.size !== 'large') {
            throw bad('size must be "small" or "large"', 'invalid_size', 'size');
        }
        if (b.style_id !== undefined && b.style_id !== null && !STYLES.includes(b.style_id)) {
            throw bad(`Unknown style_id: ${b.style_id}`, 'invalid_style', 'style_id');
        }
        const items = b.inpaint_items === undefined || b.inpaint_items === null ? [] : b.inpaint_items;
        if (!Array.isArray(items)) {
            throw bad('inpaint_items must be an array', 'invalid_inpaint_items', 'inpaint_items');
        }
        for (const it of items) {
            if (!isObject(it) || it.kind !== 'upload' || typeof it.upload_id !== 'string') {
                throw bad('inpaint_items entries must be {"kind":"upload","upload_id":"media_..."}', 'invalid_inpaint_items', 'inpaint_items');
            }
            const up = this.uploads.get(it.upload_id);
            if (!up || up.owner !== a) {
                throw bad(`Unknown upload: ${it.upload_id}`, 'invalid_upload', 'inpaint_items');
            }
        }
        let remixPost = null;
        if (remixId !== null) {
            if (typeof remixId !== 'string' || !POST_ID_RE.test(remixId)) {
                throw bad('remix_target_id must look like s_<32 hex>', 'invalid_remix_target', 'remix_target_id');
            }
            remixPost = this.posts.get(remixId) || null;
            if (!remixPost && this.config.remix_requires_known_post) {
                throw new HttpError(404, `Post not found: ${remixId}`, 'not_found', { param: 'remix_target_id' });
            }
        }
        const cameoIds = b.cameo_ids === undefined || b.cameo_ids === null ? [] : b.cameo_ids;
        if (!Array.isArray(cameoIds) || !cameoIds.every((id) => typeof id === 'string' && this.cameos.has(id))) {
            throw bad('cameo_ids must list known cameo ids', 'invalid_cameo_ids', 'cameo_ids');
        }
        if (b.cameo_replacements !== undefined && b.cameo_replacements !== null && !isObject(b.cameo_replacements)) {
            throw bad('cameo_replacements must be an object', 'invalid_cameo_replacements', 'cameo_replacements');
        }
        let sb = null;
        if (storyboard) {
            if (b.storyboard_id !== undefined && b.storyboard_id !== null) {
                throw bad('storyboard_id must be null for a new storyboard', 'invalid_storyboard', 'storyboard_id');
            }
            sb = parseStoryboard(b.prompt);
            if (this.config.storyboard_strict) {
                const sequential = sb.shots.every((s, i) => s.index === i + 1);
                if (!sb.fully_parsed || !sequential) {
                    throw bad('Storyboard prompt must be "Shot N:\\nduration: Xsec\\nScene: ..." blocks', 'invalid_storyboard_prompt', 'prompt');
                }
            }
        }
        const kind = remixId !== null ? 'remix' : (storyboard ? 'storyboard' : 'video');
        const { script, submit } = this.resolveScript(kind, b.prompt);
        if (submit) {
            return { status: submit.status || 400, body: submit.body || errorEnvelope('Rejected', 'rejected') };
        }

        const now = Date.now();
        this.settleSeconds(a, now);
        const max = a.max_concurrent !== null ? a.max_concurrent : this.config.max_concurrent_videos;
        if (max > 0 && a.running.size >= max) {
            this.counters.rejected.concurrency++;
            throw new HttpError(429, `You already have ${a.running.size} generations in progress. Please wait for one to finish.`,
                'too_many_concurrent_tasks', { details: { num_tasks: a.running.size } });
        }
        this.refillIfDue(a, now);
        if (a.remaining !== null && a.remaining <= 0) {
            this.counters.rejected.quota++;
            throw new HttpError(429, "You've reached your video generation limit. Please try again later.",
                'rate_limit_exceeded', { top: { rate_limit_and_credit_balance: this.quotaView(a, now) } });
        }
        if (a.remaining !== null) {
            a.remaining--;
        }
        const mentions = [];
        for (const m of b.prompt.matchAll(/@([a-z0-9][a-z0-9._]*[a-z0-9_])/gi)) {
            const u = this.usernames.get(m[1].toLowerCase());
            mentions.push({
                username: m[1],
                character_id: u && u.kind === 'character' ? u.ref.character_id : null,
                user_id: u && u.kind === 'account' ? u.ref.user_id : null,
            });
        }
        const task = {
            id: 'task_' + ulid(now), kind, owner: a, created_at: now, prompt: b.prompt,
            title: b.title === undefined ? null : b.title, orientation: b.orientation, n_frames: b.n_frames,
            model: b.model, size: b.size === undefined ? null : b.size, style_id: b.style_id === undefined ? null : b.style_id,
            inpaint_items: items, remix_target_id: remixId, cameo_ids: cameoIds, storyboard: sb, mentions,
            sentinel: ctx.headers['openai-sentinel-token'] || null, request: b, script, polls: 0,
            state: 'running', progress_pct: null, finished_at: null, draft: null,
        };
        if (remixPost) {
            remixPost.remix_count++;
        }
        this.tasks.set(task.id, task);
        a.running.set(task.id, task);
        this.counters.tasks_created[kind]++;
        return {
            status: 200,
            body: { id: task.id, status: 'queued', prompt: task.prompt, rate_limit_and_credit_balance: this.quotaView(a, now) },
        };
    },

    /*
     * One pending read of a running video task.  Returns the progress to show
     * (null or 0..1), or undefined once the task has left the pending list.
     */
    pendingStep(t, now) {
        const s = t.script;
        if (s.mode === 'seconds') {
            const el = (now - t.created_at) / 1000;
            const early = el < s.duration_s * 0.1;
            if (s.outcome === 'stall') {
                return early ? null : s.stall_pct;
            }
            if (el >= s.duration_s) {
                this.finishVideo(t, now);
                return undefined;
            }
            return early ? null : round2(Math.min(0.99, el / s.duration_s));
        }
        const i = t.polls++;
        const steps = s.pending;
        if (s.outcome === 'stall') {
            const v = steps.length ? steps[Math.min(i, steps.length - 1)] : null;
            return v === null ? s.stall_pct : v;
        }
        if (i < steps.length) {
            return steps[i];
        }
        this.finishVideo(t, now);
        return undefined;
    },

    /* Finish seconds-mode tasks whose time is up (polls-mode ones only move on pending reads). */
    settleSeconds(a, now) {
        for (const t of a.running.values()) {
            const s = t.script;
            if (s.mode === 'seconds' && s.outcome !== 'stall' && (now - t.created_at) / 1000 >= s.duration_s) {
                this.finishVideo(t, now);
            }
        }
    },

    /* A video task leaves the pending list; its draft is created (maybe hidden for a while). */
    finishVideo(t, now) {
        const a = t.owner;
        a.running.delete(t.id);
        t.state = 'finished';
        t.finished_at = now;
        this.counters.tasks_finished++;
        const s = t.script;
        if (s.outcome === 'vanish') {
            t.state = 'vanished';
            return;
        }
        const portrait = t.orientation === 'portrait';
        const d = {
            id: 'gen_' + ulid(now), task: t, owner: a, outcome: s.outcome,
            kind: s.outcome === 'violation' ? 'sora_content_violation' : 'sora_draft',
            reason: s.reason || MSG.violation,
            width: portrait ? 704 : 1280, height: portrait ? 1280 : 704, n_frames: t.n_frames,
            created_at: now, hidden_reads: s.draft_delay_polls, visible_at: now + s.draft_delay_s * 1000,
            url_hidden_reads: s.url_delay_polls, post_id: null,
        };
        t.draft = d;
        this.drafts.set(d.id, d);
        a.drafts.push(d);
        this.counters.drafts_created++;
        if (s.mode === 'seconds' ? s.draft_delay_s > 0 : s.draft_delay_polls > 0) {
            a.hiddenDrafts.add(d);
        }
    },

    renderDraft(ctx, d) {
        let show = d.outcome === 'success';
        if (show && d.url_hidden_reads > 0) {
            d.url_hidden_reads--;
            show = false;
        }
        const violation = d.outcome === 'violation';
        const t = d.task;
        const dl = this.signMedia(`${ctx.base}/media/vid/${d.id}.mp4`, d.created_at);
        return {
            id: d.id, task_id: t.id, kind: d.kind, generation_type: 'video_gen',
            prompt: t.prompt, title: t.title, width: d.width, height: d.height, n_frames: d.n_frames,
            created_at: d.created_at / 1000,
            url: show ? this.signMedia(`${ctx.base}/media/vid/${d.id}_wm.mp4`, d.created_at) : null,
            downloadable_url: show ? dl : null,
            reason_str: violation ? d.reason : null,
            markdown_reason_str: violation ? (d.reason === MSG.violation ? MSG.violationMd : d.reason) : null,
            post_id: d.post_id,
            permalink: d.post_id ? `https://sora.chatgpt.com/p/${d.post_id}` : null,
            encodings: show ? { thumbnail: { path: this.signMedia(`${ctx.base}/media/thumb/${d.id}.jpg`, d.created_at) }, source: { path: dl } } : {},
        };
    },

    /* With media_url_ttl_s set, `url` signed as an Azure blob SAS valid until createdMs + ttl. */
    signMedia(url, createdMs) {
        const ttl = this.config.media_url_ttl_s;
        if (ttl === null || ttl === undefined) {
            return url;
        }
        const se = new Date(Math.floor(createdMs / 1000) * 1000 + Number(ttl) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        const sig = crypto.createHmac('sha256', JWT_KEY).update(`${url}\n${se}`).digest('base64');
        return `${url}?se=${encodeURIComponent(se)}&sp=r&sv=2024-08-04&sr=b&sig=${encodeURIComponent(sig)}`;
    },

    /* One recent_tasks read of an image task; returns false while it is still invisible. */
    imageStep(t, now) {
        if (t.status !== 'processing') {
            return true;
        }
        const s = t.script;
        if (s.mode === 'seconds') {
            const el = (now - t.created_at) / 1000;
            if (s.outcome === 'stall') {
                t.progress_pct = s.stall_pct;
            } else if (el >= s.duration_s) {
                this.finalizeImage(t, now);
            } else {
                t.progress_pct = round2(Math.max(0.01, el / s.duration_s));
            }
            return true;
        }
        const i = t.polls++;
        if (i < s.invisible_polls) {
            return false;
        }
        const j = i - s.invisible_polls;
        const steps = s.progress;
        if (s.outcome === 'stall') {
            const v = steps.length ? steps[Math.min(j, steps.length - 1)] : null;
            t.progress_pct = v === null ? s.stall_pct : v;
        } else if (j < steps.length) {
            t.progress_pct = steps[j] === null ? 0 : steps[j]; // must stay numeric (doc 5.3)
        } else {
            this.finalizeImage(t, now);
        }
        return true;
    },

    finalizeImage(t, now) {
        const s = t.script;
        t.finished_at = now;
        this.counters.tasks_finished++;
        if (s.outcome === 'fail') {
            t.status = 'failed';
            t.error_message = s.error_message;
            return;
        }
        t.status = 'succeeded';
        t.progress_pct = 1.0;
        if (s.outcome === 'empty') {
            return;
        }
        for (let k = 0; k < t.n_variants; k++) {
            const id = 'gen_' + ulid(now);
            // script.path: every generation at that one URL (the same file
            // twice, as a cache sees a result it already has).
            t.generations.push({ id, path: s.path || `/media/img/${id}.png`, width: t.width, height: t.height });
        }
    },

    renderImageTask(ctx, t) {
        return {
            id: t.id, type: 'image_gen', status: t.status, progress_pct: t.progress_pct,
            prompt: t.prompt, error_message: t.error_message, created_at: t.created_at / 1000,
            generations: t.generations.map((g) => ({ id: g.id, task_id: t.id, url: ctx.base + g.path, width: g.width, height: g.height })),
        };
    },

    /* One in_progress read of a cameo. */
    cameoStep(c, now) {
        if (c.status !== 'processing') {
            return;
        }
        const s = c.script;
        const i = c.polls++;
        if (s.outcome === 'never') {
            return;
        }
        const done = s.mode === 'seconds' ? (now - c.created_at) / 1000 >= s.duration_s : i >= s.processing_polls;
        if (done && (s.outcome === 'failed' || s.outcome === 'rejected')) {
            // Sora gives up on the video: a final state with its reason.
            c.status = s.outcome;
            c.status_message = s.status_message || (s.outcome === 'failed'
                ? 'We could not find a person in the video.'
                : 'This video does not meet our content guidelines.');
            c.ended_at = now;
        } else if (done) {
            c.status = 'ready';
            c.ready_at = now;
        }
    },

    /* Bytes of one media kind, honouring a single Range (RFC 9110 section 14). */
    serveMedia(ctx, kind, body) {
        const buf = body || MEDIA[kind];
        const total = buf.length;
        this.watchMedia(ctx);
        const headers = {
            'Content-Type': MEDIA_TYPES[kind === 'jpeg' ? 'jpg' : kind][0],
            'Accept-Ranges': 'bytes',
            ETag: body ? '"' + sha256hex(buf).slice(0, 16) + '"' : MEDIA_ETAGS[kind],
            'Last-Modified': 'Thu, 11 Dec 2025 00:00:00 GMT',
            'Cache-Control': 'public, max-age=3600',
        };
        const range = ctx.headers.range;
        if (range) {
            const m = /^bytes=(\d*)-(\d*)$/.exec(String(range).trim());
            if (m && (m[1] !== '' || m[2] !== '')) {
                let first;
                let last;
                if (m[1] === '') { // suffix: the last N bytes
                    const nBytes = Number(m[2]);
                    first = Math.max(0, total - nBytes);
                    last = total - 1;
                    if (nBytes === 0) {
                        first = total;
                    }
                } else {
                    first = Number(m[1]);
                    last = m[2] === '' ? total - 1 : Math.min(Number(m[2]), total - 1);
                }
                if (first >= total || first > last) {
                    return { status: 416, raw: '', headers: { ...headers, 'Content-Range': `bytes */${total}`, 'Content-Type': 'text/plain' } };
                }
                return {
                    status: 206,
                    raw: buf.subarray(first, last + 1),
                    headers: { ...headers, 'Content-Range': `bytes ${first}-${last}/${total}` },
                };
            }
            // Multiple or malformed ranges: a server may ignore Range and send everything.
        }
        return { status: 200, raw: buf, headers };
    },

    /* Counts a media body: whether the client took it whole or cut it off. */
    watchMedia(ctx) {
        const res = ctx.res;
        const m = this.counters.media;
        m.started++;
        m.open++;
        res.once('close', () => {
            m.open--;
            if (res.writableFinished) {
                m.finished++;
            } else {
                m.aborted++;
            }
        });
    },
};

Object.assign(FakeSora.prototype, handlers, lifecycle);

/*
 * The route table.  opts.auth: needs a known Bearer AT; opts.sentinel: one of
 * the four generation/publish POSTs that carry openai-sentinel-token.
 */
const AUTH = { auth: true };
const AUTH_SENTINEL = { auth: true, sentinel: true };
const ROUTES = [
    ['GET', '/api/auth/session', 'authSession'],
    ['POST', '/oauth/token', 'oauthToken'],
    ['POST', '/backend-api/sentinel/req', 'sentinelReq'],
    ['POST', '/get-sora-link', 'getSoraLink'],
    ['GET', '/MP4/{file}', 'thirdPartyMp4'],
    ['GET', '/media/*', 'media'],
    ['GET', '/backend/me', 'me', AUTH],
    ['GET', '/backend/billing/subscriptions', 'subscriptions', AUTH],
    ['GET', '/backend/project_y/invite/mine', 'inviteMine', AUTH],
    ['GET', '/backend/m/bootstrap', 'bootstrap', AUTH],
    ['POST', '/backend/project_y/invite/accept', 'inviteAccept', AUTH],
    ['GET', '/backend/nf/check', 'nfCheck', AUTH],
    ['POST', '/backend/project_y/profile/username/check', 'usernameCheck', AUTH],
    ['POST', '/backend/project_y/profile/username/set', 'usernameSet', AUTH],
    ['POST', '/backend/uploads', 'upload', AUTH],
    ['POST', '/backend/video_gen', 'videoGen', AUTH_SENTINEL],
    ['GET', '/backend/v2/recent_tasks', 'recentTasks', AUTH],
    ['POST', '/backend/nf/create', 'nfCreate', AUTH_SENTINEL],
    ['POST', '/backend/nf/create/storyboard', 'nfCreateStoryboard', AUTH_SENTINEL],
    ['GET', '/backend/nf/pending', 'pending', AUTH],
    ['GET', '/backend/nf/pending/v2', 'pending', AUTH],
    ['GET', '/backend/project_y/profile/drafts', 'draftsList', AUTH],
    ['POST', '/backend/project_y/post', 'postCreate', AUTH_SENTINEL],
    ['DELETE', '/backend/project_y/post/{id}', 'postDelete', AUTH],
    ['POST', '/backend/characters/upload', 'characterUpload', AUTH],
    ['GET', '/backend/project_y/cameos/in_progress/{id}', 'cameoInProgress', AUTH],
    ['POST', '/backend/project_y/file/upload', 'fileUpload', AUTH],
    ['POST', '/backend/characters/finalize', 'characterFinalize', AUTH],
    ['POST', '/backend/project_y/cameos/by_id/{id}/update_v2', 'cameoUpdate', AUTH],
    ['DELETE', '/backend/project_y/characters/{id}', 'characterDelete', AUTH],
    ['GET', '/backend/project_y/profile/username/{username}', 'profileByUsername', AUTH],
    ['GET', '/backend/project_y/profile_feed/{id}', 'profileFeed', AUTH],
    ['GET', '/backend/project_y/profile/search_mentions', 'searchMentions', AUTH],
    ['GET', '/backend/project_y/feed', 'feed', AUTH],
    ['POST', '/backend/editor/enhance_prompt', 'enhancePrompt', AUTH],
];

/* ======================================================================
 * Control API (/__fake/...): JSON in, JSON out, no auth, not journaled
 * ==================================================================== */

const CONTROL_ROUTES = [
    ['GET', '/__fake/health', 'cHealth'],
    ['POST', '/__fake/reset', 'cReset'],
    ['GET', '/__fake/config', 'cConfigGet'],
    ['POST', '/__fake/config', 'cConfigSet'],
    ['GET', '/__fake/accounts', 'cAccountsList'],
    ['POST', '/__fake/accounts', 'cAccountsCreate'],
    ['POST', '/__fake/accounts/update', 'cAccountsUpdate'],
    ['POST', '/__fake/tokens', 'cTokenIssue'],
    ['GET', '/__fake/arm', 'cArmList'],
    ['POST', '/__fake/arm', 'cArm'],
    ['DELETE', '/__fake/arm', 'cArmClear'],
    ['DELETE', '/__fake/arm/{id}', 'cArmDelete'],
    ['GET', '/__fake/script', 'cScriptGet'],
    ['POST', '/__fake/script', 'cScriptSet'],
    ['POST', '/__fake/quota', 'cQuota'],
    ['GET', '/__fake/journal', 'cJournal'],
    ['DELETE', '/__fake/journal', 'cJournalClear'],
    ['GET', '/__fake/stats', 'cStats'],
    ['GET', '/__fake/state', 'cState'],
    ['GET', '/__fake/tasks/{id}', 'cTask'],
    ['POST', '/__fake/posts', 'cPostCreate'],
];

const control = {
    dispatchControl(ctx, tooBig) {
        let status = 200;
        let body;
        try {
            if (tooBig) {
                throw new Error('body too large');
            }
            if (ctx.rawBody.length) {
                try {
                    ctx.body = JSON.parse(ctx.rawBody.toString('utf8'));
                } catch (e) {
                    throw new Error('control API bodies must be JSON');
                }
            }
            let found = null;
            for (const r of this.controlRouter) {
                const params = matchPattern(r.pattern, ctx.method, ctx.path);
                if (params) {
                    found = r;
                    ctx.params = params;
                    break;
                }
            }
            if (!found) {
                status = 404;
                body = { error: `unknown control route ${ctx.req.method} ${ctx.path}` };
            } else {
                body = this[found.handler](ctx, ctx.body || {});
            }
        } catch (e) {
            status = 400;
            body = { error: e.message };
        }
        this.send(ctx, { status, body });
    },

    cHealth() {
        return { ok: true, port: this.port };
    },

    cReset() {
        this.reset();
        return { ok: true };
    },

    cConfigGet() {
        return this.config;
    },

    cConfigSet(ctx, b) {
        this.applyConfig(b);
        return this.config;
    },

    applyConfig(b) {
        if (!isObject(b)) {
            throw new Error('config must be an object');
        }
        for (const [k, v] of Object.entries(b)) {
            if (!(k in DEFAULT_CONFIG)) {
                throw new Error(`unknown config key ${k}`);
            }
            if (k === 'sentinel' && !['off', 'presence', 'json'].includes(v)) {
                throw new Error('sentinel must be "off", "presence" or "json"');
            }
        }
        const oldSize = this.config.journal_size;
        Object.assign(this.config, clone(b));
        if (b.journal_size !== undefined && b.journal_size !== oldSize) {
            // Keep the newest entries (and their sequence numbers) in the new ring.
            const keep = this.journal();
            this.resetJournal();
            for (const e of keep.slice(-this.ring.length)) {
                this.ringPush(e);
            }
        }
        for (const name of b.taken_usernames || []) {
            const lower = String(name).toLowerCase();
            if (!this.usernames.has(lower)) {
                this.usernames.set(lower, { kind: 'reserved', ref: null });
            }
        }
    },

    cAccountsList(ctx) {
        const all = ctx.query.include_seeded ? this.accounts : this.accounts.filter((a) => !a.seeded);
        return all.map((a) => this.accountView(a));
    },

    /* {count: N, ...options} -> array; {...options} -> one object. */
    cAccountsCreate(ctx, b) {
        if (!isObject(b)) {
            throw new Error('body must be an object');
        }
        if (b.count === undefined) {
            return this.accountCredentials(this.createAccount(b));
        }
        const n = Number(b.count);
        if (!Number.isInteger(n) || n < 1 || n > 100000) {
            throw new Error('count must be an integer in 1..100000');
        }
        for (const k of ['email', 'username', 'invite_code', 'session_token', 'refresh_token']) {
            if (n > 1 && typeof b[k] === 'string' && !b[k].includes('{n}')) {
                throw new Error(`with count > 1, ${k} must contain "{n}" to stay unique`);
            }
        }
        if (n > 1 && b.user_id) {
            throw new Error('user_id cannot be fixed when count > 1');
        }
        const out = [];
        for (let i = 0; i < n; i++) {
            out.push(this.accountCredentials(this.createAccount({ ...b, count: undefined })));
        }
        return out;
    },

    cAccountsUpdate(ctx, b) {
        const a = this.findAccount(b);
        const now = Date.now();
        if (b.username !== undefined) {
            if (b.username !== null && (!USERNAME_RE.test(b.username) || (this.usernames.has(b.username) && this.usernames.get(b.username).ref !== a))) {
                throw new Error(`username ${b.username} is invalid or taken`);
            }
            if (a.username) {
                this.usernames.delete(a.username);
            }
            a.username = b.username;
            if (a.username) {
                this.usernames.set(a.username, { kind: 'account', ref: a });
            }
        }
        if (b.plan !== undefined) {
            a.plan = b.plan === null || b.plan === 'free' ? null
                : (typeof b.plan === 'string' ? { id: b.plan, title: PLAN_TITLES[b.plan] || b.plan } : b.plan);
        }
        for (const k of ['sora2_activated', 'bootstrap_activates', 'billing_token_expired', 'can_cameo', 'verified']) {
            if (b[k] !== undefined) {
                a[k] = !!b[k];
            }
        }
        if (b.country_blocked !== undefined) {
            a.country_blocked = b.country_blocked ? (typeof b.country_blocked === 'string' ? b.country_blocked : 'XX') : null;
        }
        for (const k of ['redeemed_count', 'total_count', 'max_concurrent', 'at_lifetime_s', 'refill_to', 'name', 'description', 'follower_count']) {
            if (b[k] !== undefined) {
                a[k] = b[k];
            }
        }
        if (b.invite_code !== undefined) {
            const code = String(b.invite_code).toUpperCase();
            if (this.inviteCodes.has(code) && this.inviteCodes.get(code) !== a) {
                throw new Error(`invite code ${code} belongs to another account`);
            }
            this.inviteCodes.delete(a.invite_code);
            a.invite_code = code;
            this.inviteCodes.set(a.invite_code, a);
        }
        this.applyQuota(a, b, now);
        if (b.revoked !== undefined) {
            const list = b.access_token ? [b.access_token] : a.access_tokens;
            for (const t of list) {
                this.tokens.get(t).revoked = !!b.revoked;
            }
        }
        if (b.invalidate_session) {
            for (const st of a.session_tokens) {
                this.sessions.delete(st);
            }
            a.session_tokens = [];
        }
        if (b.invalidate_refresh && a.refresh_token) {
            this.refreshTokens.delete(a.refresh_token);
            a.refresh_token = null;
        }
        if (b.new_session) {
            this.addSession(a);
        }
        if (b.new_refresh_token) {
            this.setRefreshToken(a);
        }
        return this.accountView(a);
    },

    applyQuota(a, b, now) {
        if (b.remaining !== undefined) {
            a.remaining = b.remaining === null ? null : Number(b.remaining);
        }
        if (b.resets_in !== undefined) {
            a.resets_at = now + Number(b.resets_in) * 1000;
        }
        if (b.refill_to !== undefined) {
            a.refill_to = b.refill_to === null ? null : Number(b.refill_to);
        }
    },

    /* Mint another AT for an account: {selector, lifetime_s?, expired?}. */
    cTokenIssue(ctx, b) {
        const a = this.findAccount(b);
        const life = b.expired ? -3600 : (b.lifetime_s !== undefined ? Number(b.lifetime_s) : null);
        const rec = this.issueAccessToken(a, life);
        return { access_token: rec.token, exp: rec.exp, user_id: a.user_id, email: a.email };
    },

    cArmList() {
        return this.arms.map((a) => this.armView(a));
    },

    /* One arm object, or {"arms": [...]} for several at once. */
    cArm(ctx, b) {
        if (Array.isArray(b.arms)) {
            return { arms: b.arms.map((s) => this.addArm(s)) };
        }
        return this.addArm(b);
    },

    cArmClear() {
        const n = this.arms.length;
        this.arms = [];
        return { cleared: n };
    },

    cArmDelete(ctx) {
        const id = Number(ctx.params.id);
        const before = this.arms.length;
        this.arms = this.arms.filter((a) => a.id !== id);
        return { deleted: before - this.arms.length };
    },

    cScriptGet() {
        return {
            scripts: this.scripts,
            keywords: this.keywords,
            queued: Object.fromEntries(Object.entries(this.nextScripts).map(([k, v]) => [k, v.length])),
        };
    },

    /*
     * {reset?, video?, image?, cameo?, storyboard?, remix?, keywords?, next?}
     * Kind keys merge into the default script of that kind; `keywords` adds or
     * (with null) removes prompt keywords; `next` queues one-shot scripts.
     */
    cScriptSet(ctx, b) {
        if (!isObject(b)) {
            throw new Error('body must be an object');
        }
        if (b.reset) {
            this.scripts = clone(DEFAULT_SCRIPTS);
            this.keywords = clone(DEFAULT_KEYWORDS);
            this.nextScripts = { video: [], storyboard: [], remix: [], image: [], cameo: [] };
        }
        for (const kind of ['video', 'image', 'cameo']) {
            if (b[kind] !== undefined) {
                this.scripts[kind] = checkScript(kind, { ...this.scripts[kind], ...b[kind] });
            }
        }
        for (const kind of ['storyboard', 'remix']) {
            if (b[kind] !== undefined) {
                this.scripts[kind] = b[kind] === null ? undefined : checkScript(kind, { ...(this.scripts[kind] || {}), ...b[kind] });
            }
        }
        if (b.keywords !== undefined) {
            if (!isObject(b.keywords)) {
                throw new Error('keywords must be an object of keyword -> overrides');
            }
            for (const [kw, over] of Object.entries(b.keywords)) {
                if (over === null) {
                    delete this.keywords[kw];
                    continue;
                }
                if (!isObject(over)) {
                    throw new Error(`keyword ${kw}: overrides must be an object`);
                }
                for (const kind of ['video', 'image', 'storyboard', 'remix']) {
                    if (over[kind] !== undefined) {
                        checkScript(kind, over[kind]);
                    }
                }
                this.keywords[kw] = clone(over);
            }
        }
        if (b.next !== undefined) {
            if (!isObject(b.next)) {
                throw new Error('next must be an object of kind -> script or [scripts]');
            }
            for (const [kind, v] of Object.entries(b.next)) {
                if (!this.nextScripts[kind]) {
                    throw new Error(`next: unknown kind ${kind}`);
                }
                for (const s of Array.isArray(v) ? v : [v]) {
                    const rest = { ...s };
                    delete rest.submit; // submit-time overrides are not script fields
                    checkScript(kind, rest);
                    this.nextScripts[kind].push(clone(s));
                }
            }
        }
        return this.cScriptGet();
    },

    /* {selector | all: true, remaining?, resets_in?, refill_to?} */
    cQuota(ctx, b) {
        const now = Date.now();
        const targets = b.all ? this.accounts.filter((a) => !a.seeded) : [this.findAccount(b)];
        for (const a of targets) {
            this.applyQuota(a, b, now);
        }
        return b.all ? { updated: targets.length }
            : { user_id: targets[0].user_id, rate_limit_and_credit_balance: this.quotaView(targets[0], now) };
    },

    cJournal(ctx) {
        const entries = this.journal(ctx.query);
        return { entries, last_seq: this.journalSeq, size: this.ringCount, evicted: this.journalEvicted };
    },

    cJournalClear() {
        const n = this.ringCount;
        this.resetJournal();
        return { cleared: n };
    },

    cStats() {
        return this.stats();
    },

    /* Dump for assertions; ?token=/?email=/?user_id= narrows it to one account. */
    cState(ctx) {
        const q = ctx.query;
        let only = null;
        if (q.token || q.email || q.user_id) {
            only = this.findAccount({ access_token: q.token, email: q.email, user_id: q.user_id });
        }
        const mine = (o) => !only || o.owner === only;
        if (q.summary) {
            return this.stats().live;
        }
        return {
            accounts: (only ? [only] : this.accounts).map((a) => this.accountView(a)),
            tasks: [...this.tasks.values()].filter(mine).map((t) => this.taskView(t)),
            posts: [...this.posts.values()].filter(mine).map((p) => this.postView(p)),
            uploads: [...this.uploads.values()].filter(mine).map((u) => ({ ...u, owner: u.owner.user_id })),
            files: [...this.files.values()].filter(mine).map((f) => ({ ...f, owner: f.owner.user_id })),
            cameos: [...this.cameos.values()].filter(mine).map((c) => ({ ...c, owner: c.owner.user_id })),
            characters: [...this.characters.values()].filter(mine).map((c) => ({ ...c, owner: c.owner.user_id })),
            usernames_reserved: [...this.usernames].filter(([, u]) => u.kind === 'reserved').map(([n]) => n),
            sentinel_challenges: this.sentinelChallenges,
        };
    },

    cTask(ctx) {
        const t = this.tasks.get(ctx.params.id);
        if (!t) {
            throw new Error('no such task');
        }
        return this.taskView(t);
    },

    /* Seed a post (e.g. a remix target) owned by an account: {selector, text?, like_count?, ...}. */
    cPostCreate(ctx, b) {
        const a = this.findAccount(b);
        if (b.id !== undefined && (!POST_ID_RE.test(b.id) || this.posts.has(b.id))) {
            throw new Error('id must be an unused s_<32 hex>');
        }
        const p = this.createPost(a, {
            id: b.id, text: b.text, like_count: b.like_count, view_count: b.view_count,
            remix_count: b.remix_count, posted_at: b.posted_at,
        });
        return { ...this.postView(p), permalink: `https://sora.chatgpt.com/p/${p.id}` };
    },

    accountView(a) {
        return {
            user_id: a.user_id, email: a.email, name: a.name, username: a.username,
            plan: a.plan, sora2_activated: a.sora2_activated, bootstrap_activates: a.bootstrap_activates,
            bootstrap_calls: a.bootstrap_calls, country_blocked: a.country_blocked,
            billing_token_expired: a.billing_token_expired, invite_code: a.invite_code,
            redeemed_count: a.redeemed_count, total_count: a.total_count,
            remaining: a.remaining, refill_to: a.refill_to,
            access_resets_in_seconds: Math.max(0, Math.ceil((a.resets_at - Date.now()) / 1000)),
            max_concurrent: a.max_concurrent, can_cameo: a.can_cameo,
            running_tasks: [...a.running.keys()], drafts: a.drafts.length, image_tasks: a.imageTasks.length,
            posts: a.posts.slice(),
            access_tokens: a.access_tokens.map((t) => ({ token: t, exp: this.tokens.get(t).exp, revoked: this.tokens.get(t).revoked })),
            session_tokens: a.session_tokens.slice(), refresh_token: a.refresh_token, client_id: a.client_id,
            seeded: a.seeded,
        };
    },

    taskView(t) {
        const { owner, draft, generations, ...rest } = t;
        const v = { ...rest, owner: owner.user_id, owner_email: owner.email };
        if (t.kind === 'image') {
            v.generations = generations;
        } else {
            v.draft = draft ? {
                id: draft.id, kind: draft.kind, outcome: draft.outcome, post_id: draft.post_id,
                visible: !owner.hiddenDrafts.has(draft),
            } : null;
        }
        return v;
    },

    postView(p) {
        return {
            id: p.id, owner: p.owner.user_id, owner_username: p.owner.username, text: p.text,
            generation_id: p.generation_id, posted_at: p.posted_at, like_count: p.like_count,
            view_count: p.view_count, remix_count: p.remix_count, seeded: p.seeded,
        };
    },
};

Object.assign(FakeSora.prototype, control);

/* ======================================================================
 * Server start-up (module API and command line)
 * ==================================================================== */

function isLoopback(host) {
    return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/*
 * Start a fake on options.port (0 = any free port) and options.host
 * (loopback only, default 127.0.0.1).  options.config overrides defaults.
 * Resolves to {port, host, url, fake, server, close()}; close() resolves once
 * every connection is gone.
 */
function start(options = {}) {
    const host = options.host || '127.0.0.1';
    if (!isLoopback(host)) {
        return Promise.reject(new Error(`fake-sora binds loopback addresses only, not ${host}`));
    }
    const fake = new FakeSora(options);
    const server = http.createServer({
        keepAliveTimeout: 65000, // the gateway keeps pooled connections open
        headersTimeout: 66000,
        requestTimeout: 0, // armed delays may exceed Node's 300 s default
    }, (req, res) => fake.handle(req, res));
    server.keepAliveTimeout = 65000;
    server.maxRequestsPerSocket = 0;
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: options.port || 0, host, backlog: 4096 }, () => {
            server.removeListener('error', reject);
            const port = server.address().port;
            fake.port = port;
            const urlHost = host.includes(':') ? `[${host}]` : host;
            let closing = null;
            const close = () => {
                if (!closing) {
                    closing = new Promise((done) => {
                        for (const t of fake.timers) {
                            clearTimeout(t);
                        }
                        fake.timers.clear();
                        server.close(() => done());
                        server.closeAllConnections();
                    });
                }
                return closing;
            };
            resolve({ port, host, url: `http://${urlHost}:${port}`, fake, server, close });
        });
    });
}

const USAGE = `usage: node server.js [--port N] [--host 127.0.0.1] [--config file.json]
                      [--sentinel off|presence|json] [--journal-size N]
                      [--public-base-url URL] [--verbose]
Prints "listening on HOST:PORT" once ready; SIGTERM/SIGINT stop it.`;

function main(argv) {
    const opts = { port: 0, host: '127.0.0.1', config: {} };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) {
                throw new Error(`${a} needs a value`);
            }
            return argv[++i];
        };
        switch (a) {
        case '--port': opts.port = Number(val()); break;
        case '--host': opts.host = val(); break;
        case '--config': Object.assign(opts.config, JSON.parse(fs.readFileSync(val(), 'utf8'))); break;
        case '--sentinel': opts.config.sentinel = val(); break;
        case '--journal-size': opts.config.journal_size = Number(val()); break;
        case '--public-base-url': opts.config.public_base_url = val(); break;
        case '--verbose': opts.config.verbose = true; break;
        case '-h': case '--help': process.stdout.write(USAGE + '\n'); return;
        default: throw new Error(`unknown argument ${a}\n${USAGE}`);
        }
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
        throw new Error('--port must be 0..65535');
    }
    for (const k of Object.keys(opts.config)) {
        if (!(k in DEFAULT_CONFIG)) {
            throw new Error(`unknown config key ${k}`);
        }
    }
    start(opts).then((srv) => {
        process.stdout.write(`listening on ${opts.host}:${srv.port}\n`);
        const stop = () => srv.close().then(() => process.exit(0));
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
    }, (e) => {
        process.stderr.write(`fake-sora: ${e.message}\n`);
        process.exit(1);
    });
}

module.exports = {
    start,
    FakeSora,
    MEDIA,
    makeJwt,
    decodeJwt,
    parseMultipart,
    parseStoryboard,
    compilePattern,
    matchPattern,
    sniffMedia,
    DEFAULT_CONFIG,
    DEFAULT_SCRIPTS,
    DEFAULT_KEYWORDS,
    ARM_PRESETS,
    PROFILE_CLAIM,
};

if (require.main === module) {
    try {
        main(process.argv.slice(2));
    } catch (e) {
        process.stderr.write(`fake-sora: ${e.message}\n`);
        process.exit(2);
    }
}
