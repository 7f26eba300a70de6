#!/usr/bin/env node
'use strict';
/*
 * gen-load.js: load benchmark of streaming video generation through
 * POST /v1/chat/completions, against the fake Sora upstream.
 *
 * Loads T accounts into the pool (video_concurrency 3 each, as real accounts
 * allow about three concurrent jobs), opens N = 3T concurrent streaming
 * video generations (the fake's "seconds" script: each task done in about
 * --duration seconds) and reports completions, failures by reason, wall
 * time, peak RSS / PSS of all daemon processes, daemon CPU seconds per
 * generation, upstream requests per generation, and the coalescing check:
 * the most GET nf/pending (and drafts rounds) one worker made for one token
 * within 4 poll intervals (at most 5 when each is issued one interval after
 * the previous one, however late some arrive) and within 0.9 interval.
 *
 * Everything runs on 127.0.0.1: the fake (tests/fake-sora/server.js, loaded
 * as a module in a child process of this script that also records a compact
 * per-request log: time, route, token, client port) and a private copy of
 * the daemon (named s2abench) in a temporary directory. Both are stopped on
 * exit, on Ctrl-C / SIGTERM and on errors; if this process dies outright,
 * the fake child notices its IPC channel closing and kills the daemon.
 *
 * It prints figures and never asserts timings. Exit status: 0 when every
 * generation completed and the daemon stopped cleanly; 1 when something is
 * broken (setup, a failed generation, a daemon crash, a worker replaced, a
 * non-zero exit on SIGTERM); 2 for bad arguments. With STRICT=1 (or
 * --strict) a missed target (RSS, coalescing) is also exit 1.
 *
 * Usage: node bench/gen-load.js [--tokens T] [options]   (--help lists them)
 * Node >= 20, standard library only. Raise "ulimit -n" first for big T
 * (bench/gen-load.sh does).
 */

const { spawn, fork, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const FAKE_SERVER = path.join(ROOT, 'tests', 'fake-sora', 'server.js');
const API_KEY = 'han1234';
const RSS_TARGET_KB = 256 * 1024;

/* ====================================================================
 * Fake child: the fake upstream plus a compact request recorder.
 * ==================================================================== */

async function fakeChild() {
  const { start } = require(FAKE_SERVER);
  // The journal ring is kept small (the compact recorder below replaces it
  // for the analysis); the counters of /__fake/stats never drop anything.
  const srv = await start({ port: 0, host: '127.0.0.1', config: { journal_size: 2000 } });
  const F = srv.fake;
  const rec = { on: false, t: [], r: [], k: [], p: [], c: [] };
  const routes = new Map();
  const tokens = new Map();
  let curPort = 0;
  const origDispatch = F.dispatch;
  F.dispatch = function dispatch(req, res, rawBody, tooBig) {
    curPort = (req.socket && req.socket.remotePort) || 0;
    return origDispatch.call(this, req, res, rawBody, tooBig);
  };
  const origRecord = F.record;
  F.record = function record(entry) {
    if (rec.on) {
      let r = routes.get(entry.route);
      if (r === undefined) {
        r = routes.size;
        routes.set(entry.route, r);
      }
      let k = -1;
      if (entry.token) {
        k = tokens.get(entry.token);
        if (k === undefined) {
          k = tokens.size;
          tokens.set(entry.token, k);
        }
      }
      rec.t.push(entry.time);
      rec.r.push(r);
      rec.k.push(k);
      rec.p.push(curPort);
      rec.c.push(entry.query && entry.query.cursor ? 1 : 0);
    }
    return origRecord.call(this, entry);
  };

  let watched = [];
  const killWatched = async () => {
    const alive = watched.filter((pid) => {
      try { process.kill(pid, 'SIGTERM'); return true; } catch (_) { return false; }
    });
    for (let i = 0; i < 50 && alive.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      for (let j = alive.length - 1; j >= 0; j--) {
        try { process.kill(alive[j], 0); } catch (_) { alive.splice(j, 1); }
      }
    }
    for (const pid of alive) {
      try { process.kill(pid, 'SIGKILL'); } catch (_) { /* gone */ }
    }
  };
  process.on('message', (m) => {
    if (m.cmd === 'watch') {
      watched = m.pids.slice();
    } else if (m.cmd === 'record') {
      rec.on = !!m.on;
      if (m.reset) {
        rec.t = []; rec.r = []; rec.k = []; rec.p = []; rec.c = [];
      }
      process.send({ cmd: 'record', ok: true });
    } else if (m.cmd === 'dump') {
      process.send({
        cmd: 'dump', routes: [...routes.keys()], t: rec.t, r: rec.r, k: rec.k, p: rec.p, c: rec.c,
      });
    }
  });
  // The parent went away (normal end, or it died): stop whatever it
  // registered, then ourselves.
  process.on('disconnect', () => {
    killWatched().finally(() => srv.close().finally(() => process.exit(0)));
    setTimeout(() => process.exit(0), 8000).unref();
  });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => { /* the parent decides; it disconnects us */ });
  }
  process.send({ cmd: 'ready', port: srv.port });
}

/* ====================================================================
 * Helpers
 * ==================================================================== */

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`gen-load: ${a.join(' ')}\n`);

function die(msg) {
  const e = new Error(msg);
  e.fatal = true;
  throw e;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// One HTTP request with a JSON (or no) body; resolves {status, text, json}.
function request(base, method, p, { headers = {}, body, timeout = 30000, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, base);
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = Object.assign({}, headers);
    if (data !== undefined) {
      h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(data);
    }
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent, timeout,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch (_) { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: timeout after ${timeout} ms`)));
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}
function fmtNum(n, d = 2) {
  return Number.isFinite(n) ? n.toFixed(d) : 'n/a';
}
function fmtMB(kb) {
  return Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MB` : 'n/a';
}
function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/* ---------------------------------------------------------------- /proc */

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch (_) { /* keep 100 */ }

function readStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] = state (field 3), f[1] = ppid, f[11] = utime (14), f[12] = stime (15)
    return { state: f[0], ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch (_) {
    return null;
  }
}

function kbField(text, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function readMem(pid) {
  try {
    const rss = kbField(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
    let pss = NaN;
    try { pss = kbField(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss'); } catch (_) { /* old kernel */ }
    return { rss, pss };
  } catch (_) {
    return null;
  }
}

function childPids(pid) {
  try {
    const txt = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return txt ? txt.split(/\s+/).map(Number).filter((c) => {
      const st = readStat(c);
      return st && st.state !== 'Z';
    }) : [];
  } catch (_) {
    const out = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const st = readStat(Number(d));
      if (st && st.ppid === pid && st.state !== 'Z') out.push(Number(d));
    }
    return out;
  }
}

function fdCount(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch (_) { return NaN; }
}

// Local ports of the TCP connections `pid` holds towards 127.0.0.1:remotePort.
function upstreamPorts(pid, remotePort, tcpTable) {
  const inodes = new Set();
  let fds;
  try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch (_) { return []; }
  for (const fd of fds) {
    try {
      const l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (l.startsWith('socket:[')) inodes.add(l.slice(8, -1));
    } catch (_) { /* closed meanwhile */ }
  }
  const out = [];
  for (const [inode, lport] of tcpTable(remotePort)) {
    if (inodes.has(inode)) out.push(lport);
  }
  return out;
}

function tcpTableReader() {
  let cache = null;
  return (remotePort) => {
    if (cache && cache.port === remotePort) return cache.map;
    const map = new Map();
    const want = remotePort.toString(16).toUpperCase().padStart(4, '0');
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      let txt;
      try { txt = fs.readFileSync(file, 'utf8'); } catch (_) { continue; }
      for (const line of txt.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10 || !f[2] || !f[2].endsWith(`:${want}`)) continue;
        const lport = parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16);
        map.set(f[9], lport);
      }
    }
    cache = { port: remotePort, map };
    return map;
  };
}

/* ====================================================================
 * Arguments
 * ==================================================================== */

const USAGE = `usage: node bench/gen-load.js [options]
  --tokens T          accounts loaded into the pool (default 100)
  --streams N         concurrent streaming generations (default 3 x T)
  --per-token K       video_concurrency of each token (default 3)
  --duration S        seconds each fake video task takes (default 20)
  --workers W         daemon worker processes (default 2)
  --poll-ms MS        [upstream] poll_interval_ms (default 2500)
  --model NAME        model of every request (default sora-video-landscape-10s)
  --quota Q           videos each fake account may make (default 100)
  --queue-timeout S   queue_timeout setting (default: the daemon's, 60)
  --timeout S         client deadline of one stream (default duration + 600)
  --idle-timeout S    a stream silent this long fails (default 60; the
                      daemon sends a heartbeat every 15 s)
  --ramp-ms MS        spread the N request starts over MS (default 0: at once)
  --sample-ms MS      process sampling period (default 500)
  --import-batch B    tokens per import request (default 500, 4 at a time)
  --log-level L       daemon [log] level (default notice)
  --access-log        write the daemon's access log (default off)
  --json FILE         also write the machine-readable result to FILE
  --dump FILE         write the fake's per-request record (time, route,
                      token, worker) to FILE as JSON, for offline analysis
  --setup-only        set everything up, send one probe request, stop
  --keep              keep the temporary directory (also KEEP_TMP=1)
  --strict            a missed target is exit 1 (also STRICT=1)
  --daemon PATH       sora2apid binary (default $SORA2APID or build/sora2apid)
  --quiet             no progress lines on stderr`;

function parseArgs(argv) {
  const o = {
    tokens: 100, streams: 0, perToken: 3, duration: 20, workers: 2, pollMs: 2500,
    model: 'sora-video-landscape-10s', quota: 100, queueTimeout: 0, timeout: 0, idleTimeout: 60,
    rampMs: 0, sampleMs: 500, importBatch: 500, logLevel: 'notice', accessLog: false, json: '', dump: '',
    setupOnly: false, keep: process.env.KEEP_TMP === '1', strict: process.env.STRICT === '1',
    daemon: process.env.SORA2APID || path.join(ROOT, 'build', 'sora2apid'), quiet: false,
  };
  const ints = {
    '--tokens': 'tokens', '--streams': 'streams', '--per-token': 'perToken', '--duration': 'duration',
    '--workers': 'workers', '--poll-ms': 'pollMs', '--quota': 'quota', '--queue-timeout': 'queueTimeout',
    '--timeout': 'timeout', '--idle-timeout': 'idleTimeout', '--ramp-ms': 'rampMs',
    '--sample-ms': 'sampleMs', '--import-batch': 'importBatch',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (ints[a]) {
      const v = Number(val());
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a} needs a non-negative integer`);
      o[ints[a]] = v;
    } else if (a === '--model') o.model = val();
    else if (a === '--log-level') o.logLevel = val();
    else if (a === '--json') o.json = val();
    else if (a === '--dump') o.dump = val();
    else if (a === '--daemon') o.daemon = path.resolve(val());
    else if (a === '--access-log') o.accessLog = true;
    else if (a === '--setup-only') o.setupOnly = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--strict') o.strict = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '-h' || a === '--help') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (o.tokens < 1) throw new Error('--tokens must be at least 1');
  if (o.workers < 1 || o.workers > 64) throw new Error('--workers must be 1..64');
  if (o.pollMs < 20) throw new Error('--poll-ms must be at least 20');
  if (o.duration < 1) throw new Error('--duration must be at least 1');
  if (o.perToken < 1) throw new Error('--per-token must be at least 1');
  if (o.importBatch < 1) throw new Error('--import-batch must be at least 1');
  if (o.sampleMs < 50) throw new Error('--sample-ms must be at least 50');
  if (!o.streams) o.streams = o.perToken * o.tokens;
  if (!o.timeout) o.timeout = o.duration + 600;
  return o;
}

/* ====================================================================
 * The run
 * ==================================================================== */

class Run {
  constructor(o) {
    this.o = o;
    this.cleanups = [];
    this.result = {
      bench: 'gen-load', date: new Date().toISOString(), host: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
      params: {
        tokens: o.tokens, streams: o.streams, per_token: o.perToken, duration_s: o.duration, workers: o.workers,
        poll_interval_ms: o.pollMs, model: o.model, quota: o.quota, ramp_ms: o.rampMs,
      },
    };
    this.problems = []; // something broken: exit 1
    this.missed = [];   // a target missed: reported (exit 1 with --strict)
  }

  /* ------------------------------------------------------------ setup */

  async startFake() {
    const child = fork(__filename, ['--fake-child'], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'advanced',
    });
    this.fakeProc = child;
    this.fakeErr = '';
    child.stderr.on('data', (d) => {
      this.fakeErr += d;
      if (this.fakeErr.length > 65536) this.fakeErr = this.fakeErr.slice(-32768);
    });
    this.fakeExited = new Promise((r) => child.on('exit', (code, sig) => r({ code, sig })));
    const port = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('fake did not start in 10 s')), 10000);
      child.on('message', (m) => {
        if (m.cmd === 'ready') { clearTimeout(t); resolve(m.port); }
      });
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`fake exited (${code}): ${this.fakeErr}`)); });
    });
    this.fakePort = port;
    this.fakeUrl = `http://127.0.0.1:${port}`;
    this.registerPid(child.pid);
    this.cleanups.push(() => this.stopFake());
  }

  fakeCall(cmd, extra = {}) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`fake child: no answer to ${cmd}`)), 60000);
      const on = (m) => {
        if (m.cmd === cmd) {
          clearTimeout(t);
          this.fakeProc.removeListener('message', on);
          resolve(m);
        }
      };
      this.fakeProc.on('message', on);
      this.fakeProc.send(Object.assign({ cmd }, extra));
    });
  }

  async ctl(method, p, body) {
    const r = await request(this.fakeUrl, method, `/__fake${p}`, { body, timeout: 120000 });
    if (r.status !== 200) die(`fake ${method} ${p}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
  }

  async stopFake() {
    if (!this.fakeProc || this.fakeProc.exitCode !== null) return;
    if (this.fakeProc.connected) this.fakeProc.disconnect();
    const t = setTimeout(() => { try { this.fakeProc.kill('SIGKILL'); } catch (_) { /* gone */ } }, 10000);
    await this.fakeExited;
    clearTimeout(t);
  }

  registerPid(pid) {
    // bench/gen-load.sh passes a file where the pids of what we start are
    // listed, so that it can stop them if this process is killed outright.
    if (process.env.GEN_LOAD_PIDFILE) {
      try { fs.appendFileSync(process.env.GEN_LOAD_PIDFILE, `pid ${pid}\n`); } catch (_) { /* best effort */ }
    }
  }

  confText() {
    const d = this.dir;
    const sec = {
      server: {
        listen: `127.0.0.1:${this.port}`,
        workers: String(this.o.workers),
        pidfile: path.join(d, 'sora2apid.pid'),
        backlog: '4096',
        shutdown_timeout: '10',
        // Only bounds request heads, bodies and idle kept-alive
        // connections: a handler's stream has no read deadline.
        client_timeout: '120',
      },
      paths: {
        data_dir: path.join(d, 'data'),
        cache_dir: path.join(d, 'cache'),
        admin_ui_dir: path.join(d, 'ui'),
      },
      log: {
        error_log: this.logFile,
        access_log: this.o.accessLog ? path.join(d, 'access.log') : 'off',
        level: this.o.logLevel,
      },
      upstream: {
        base_url: `${this.fakeUrl}/backend`,
        session_url: `${this.fakeUrl}/api/auth/session`,
        oauth_url: `${this.fakeUrl}/oauth/token`,
        timeout: '120',
        poll_interval_ms: String(this.o.pollMs),
      },
      limits: {
        max_tokens: String(Math.max(4096, this.o.tokens + 16)),
        max_leases: String(Math.max(65536, 2 * this.o.streams)),
      },
    };
    let text = '# written by bench/gen-load.js\n';
    for (const [s, kv] of Object.entries(sec)) {
      text += `[${s}]\n`;
      for (const [k, v] of Object.entries(kv)) text += `${k} = ${v}\n`;
    }
    return text;
  }

  async startDaemon() {
    if (!fs.existsSync(this.o.daemon)) die(`${this.o.daemon} not found (make -C ${ROOT} -j2)`);
    fs.mkdirSync(path.join(this.dir, 'bin'));
    fs.mkdirSync(path.join(this.dir, 'ui'));
    // A private copy under another name: a "pkill sora2apid" elsewhere
    // cannot stop it, and its pages are not shared with other instances.
    this.bin = path.join(this.dir, 'bin', 's2abench');
    fs.copyFileSync(this.o.daemon, this.bin);
    fs.chmodSync(this.bin, 0o755);
    this.port = await freePort();
    this.logFile = path.join(this.dir, 'error.log');
    this.confFile = path.join(this.dir, 'sora2api.conf');
    fs.writeFileSync(this.confFile, this.confText());
    try {
      execFileSync(this.bin, ['-t', '-c', this.confFile], { stdio: 'pipe' });
    } catch (e) {
      die(`configuration refused by the daemon: ${(e.stderr || e.stdout || e.message).toString().trim()}`);
    }
    this.daemonOut = '';
    const p = spawn(this.bin, ['-f', '-c', this.confFile], { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    p.stdout.on('data', (d) => { this.daemonOut += d; });
    p.stderr.on('data', (d) => { this.daemonOut += d; });
    this.daemonProc = p;
    this.daemonExit = null;
    this.daemonExited = new Promise((r) => p.on('exit', (code, signal) => {
      this.daemonExit = { code, signal };
      r(this.daemonExit);
    }));
    this.master = p.pid;
    this.registerPid(p.pid);
    this.fakeProc.send({ cmd: 'watch', pids: [p.pid] });
    this.cleanups.push(() => this.stopDaemon(true));
    const end = Date.now() + 15000;
    for (;;) {
      if (this.readLog().includes('ready:')) break;
      if (this.daemonExit) die(`daemon exited at start (${JSON.stringify(this.daemonExit)}): ${this.daemonOut}${this.readLog().slice(-2000)}`);
      if (Date.now() > end) die(`daemon not ready after 15 s: ${this.readLog().slice(-2000)}`);
      await sleep(50);
    }
    this.base = `http://127.0.0.1:${this.port}`;
    // Wait until every worker runs.
    for (let i = 0; i < 100 && childPids(this.master).length < this.o.workers; i++) await sleep(50);
    this.initialWorkers = childPids(this.master).sort((a, b) => a - b);
  }

  readLog() {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch (_) { return ''; }
  }

  async stopDaemon(quiet = false) {
    if (!this.daemonProc || this.daemonExit) return this.daemonExit;
    this.daemonProc.kill('SIGTERM');
    let timer;
    const res = await Promise.race([this.daemonExited, new Promise((r) => { timer = setTimeout(() => r(null), 20000); })]);
    clearTimeout(timer);
    if (res === null) {
      if (!quiet) this.problems.push('the daemon did not stop within 20 s of SIGTERM (killed)');
      this.daemonProc.kill('SIGKILL');
      await this.daemonExited;
    }
    return this.daemonExit;
  }

  async admin() {
    const r = await request(this.base, 'POST', '/api/login', { body: { username: 'admin', password: 'admin' } });
    if (r.status !== 200 || !r.json || !r.json.token) die(`admin login failed: ${r.status} ${r.text.slice(0, 200)}`);
    this.H = { Authorization: `Bearer ${r.json.token}` };
    // Keep background upkeep (quota checks, AT refresh) out of the figures.
    const cfg = { quota_refresh_interval: 0 };
    if (this.o.queueTimeout) cfg.queue_timeout = this.o.queueTimeout;
    let s = await request(this.base, 'POST', '/api/admin/config', { headers: this.H, body: cfg });
    if (s.status !== 200) die(`POST /api/admin/config: ${s.status} ${s.text.slice(0, 200)}`);
    s = await request(this.base, 'POST', '/api/token-refresh/enabled', { headers: this.H, body: { enabled: false } });
    if (s.status !== 200) die(`POST /api/token-refresh/enabled: ${s.status} ${s.text.slice(0, 200)}`);
  }

  async loadTokens() {
    const o = this.o;
    const t0 = Date.now();
    await this.ctl('POST', '/script', { reset: true, video: { mode: 'seconds', duration_s: o.duration } });
    const accs = await this.ctl('POST', '/accounts', {
      count: o.tokens, email: 'load{n}@example.test', username: 'load{n}', plan: 'chatgpt_pro',
      remaining: o.quota, max_concurrent: o.perToken,
    });
    const list = Array.isArray(accs) ? accs : [accs];
    if (list.length !== o.tokens) die(`fake made ${list.length} accounts, not ${o.tokens}`);
    const items = list.map((a) => ({
      email: a.email, access_token: a.access_token, session_token: a.session_token,
      refresh_token: a.refresh_token, is_active: true, video_enabled: true, image_enabled: true,
      video_concurrency: o.perToken,
    }));
    const batches = [];
    for (let i = 0; i < items.length; i += o.importBatch) batches.push(items.slice(i, i + o.importBatch));
    let added = 0;
    let updated = 0;
    const errors = [];
    let next = 0;
    const lane = async () => {
      while (next < batches.length) {
        const b = batches[next++];
        const r = await request(this.base, 'POST', '/api/tokens/import', {
          headers: this.H, body: { tokens: b }, timeout: 900000,
        });
        if (r.status !== 200 || !r.json) die(`import: ${r.status} ${r.text.slice(0, 300)}`);
        added += r.json.added;
        updated += r.json.updated;
        errors.push(...(r.json.errors || []));
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, batches.length) }, lane));
    if (errors.length) die(`import: ${errors.length} failed, e.g. ${JSON.stringify(errors.slice(0, 3))}`);
    const tok = await request(this.base, 'GET', '/api/tokens', { headers: this.H, timeout: 120000 });
    if (tok.status !== 200 || !Array.isArray(tok.json)) die(`GET /api/tokens: ${tok.status} ${tok.text.slice(0, 200)}`);
    const mine = tok.json.filter((t) => /^load\d+@example\.test$/.test(t.email));
    const bad = mine.filter((t) => t.state !== 'active' || !t.sora2_supported || t.video_concurrency !== o.perToken);
    if (mine.length !== o.tokens || bad.length) {
      die(`pool check: ${mine.length} tokens listed, ${bad.length} not active+sora2+video_concurrency ${o.perToken}`
        + (bad.length ? `, e.g. ${JSON.stringify(bad[0]).slice(0, 400)}` : ''));
    }
    this.result.setup = { accounts: o.tokens, added, updated, import_s: (Date.now() - t0) / 1000 };
    log(`pool: ${o.tokens} tokens imported (${added} added, ${updated} updated) in ${((Date.now() - t0) / 1000).toFixed(1)} s;`
      + ` all active, Sora 2, video_concurrency ${o.perToken}`);
  }

  /* --------------------------------------------------------- sampling */

  startSampler() {
    const s = {
      samples: 0, peakRss: 0, peakPss: 0, peakRssAt: 0, peakPssAt: 0, peakFds: 0,
      perPid: new Map(), // pid -> {role, first, last, peakRss, peakPss}
      timeline: [], prevPoint: null,
      pidsSeen: new Set(), workerSets: new Set(),
    };
    this.sampler = s;
    this.portWorker = new Map();
    let lastPortScan = 0;
    const tick = () => {
      if (this.daemonExit) return;
      const workers = childPids(this.master).sort((a, b) => a - b);
      s.workerSets.add(workers.join(','));
      let rss = 0;
      let pss = 0;
      let fds = 0;
      for (const pid of [this.master, ...workers]) {
        const st = readStat(pid);
        const m = readMem(pid);
        if (!st || !m) continue;
        let e = s.perPid.get(pid);
        if (!e) {
          e = { role: pid === this.master ? 'master' : 'worker', first: s.started ? 0 : st.ticks, last: st.ticks, peakRss: 0, peakPss: 0 };
          s.perPid.set(pid, e);
        }
        e.last = st.ticks;
        e.peakRss = Math.max(e.peakRss, m.rss);
        e.peakPss = Math.max(e.peakPss, m.pss || 0);
        rss += m.rss;
        pss += m.pss || 0;
        if (pid !== this.master) fds += fdCount(pid);
      }
      s.samples++;
      // A timeline of the load, one point a second: memory, CPU % of the
      // master, of all workers and of the fake, streams done.
      if (s.started) {
        const now = Date.now();
        let mt = 0;
        let wt = 0;
        for (const [pid, e] of s.perPid) {
          if (pid === this.master) mt += e.last; else wt += e.last;
        }
        const ft = (readStat(this.fakeProc.pid) || {}).ticks || 0;
        const prev = s.prevPoint;
        if (!prev || now - prev.now >= 1000) {
          if (prev) {
            const dt = (now - prev.now) / 1000;
            const ls = this.loadStats || {};
            s.timeline.push({
              t: Number(((now - this.loadT0) / 1000).toFixed(1)), rss_kb: rss, pss_kb: pss,
              master_cpu_pct: Math.round(((mt - prev.mt) / CLK_TCK / dt) * 100),
              workers_cpu_pct: Math.round(((wt - prev.wt) / CLK_TCK / dt) * 100),
              fake_cpu_pct: Math.round(((ft - prev.ft) / CLK_TCK / dt) * 100),
              completed: ls.completed || 0, failed: ls.failed || 0, open: ls.open || 0,
            });
          }
          s.prevPoint = { now, mt, wt, ft };
        }
      }
      s.lastRss = rss;
      s.lastPss = pss;
      if (rss > s.peakRss) { s.peakRss = rss; s.peakRssAt = Date.now(); }
      if (pss > s.peakPss) { s.peakPss = pss; s.peakPssAt = Date.now(); }
      s.peakFds = Math.max(s.peakFds, fds);
      if (s.started && Date.now() - lastPortScan >= 2000) {
        lastPortScan = Date.now();
        this.scanPorts(workers);
      }
    };
    tick();
    this.samplerTimer = setInterval(tick, this.o.sampleMs);
    this.samplerTick = tick;
  }

  // Which worker owns which upstream connection (by the client port the
  // fake saw), to split the coalescing check per worker.
  scanPorts(workers) {
    const tcp = tcpTableReader(); // a fresh read of the table each scan
    for (const w of workers) {
      for (const p of upstreamPorts(w, this.fakePort, tcp)) this.portWorker.set(p, w);
    }
  }

  // Baseline of the CPU counters at the start of the load.
  markLoadStart() {
    const s = this.sampler;
    for (const [pid, e] of s.perPid) {
      const st = readStat(pid);
      e.first = st ? st.ticks : e.last;
      e.last = e.first;
    }
    s.started = true;
    this.loadT0 = Date.now();
    s.peakRss = 0;
    s.peakPss = 0;
    s.peakFds = 0;
    for (const e of s.perPid.values()) { e.peakRss = 0; e.peakPss = 0; }
    this.fakeTicks0 = (readStat(this.fakeProc.pid) || {}).ticks;
    this.selfCpu0 = process.cpuUsage();
  }

  cpuSeconds() {
    let ticks = 0;
    const per = [];
    for (const [pid, e] of this.sampler.perPid) {
      const st = readStat(pid);
      if (st && (pid === this.master || st.ppid === this.master)) e.last = st.ticks;
      ticks += e.last - e.first;
      per.push({ pid, role: e.role, cpu_s: (e.last - e.first) / CLK_TCK, peak_rss_kb: e.peakRss, peak_pss_kb: e.peakPss });
    }
    return { total: ticks / CLK_TCK, per };
  }

  /* ------------------------------------------------------------- load */

  async load() {
    const o = this.o;
    const runId = Math.random().toString(36).slice(2, 8);
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity });
    this.agent = agent;
    const st = {
      started: 0, headers: 0, submitted: 0, completed: 0, failed: 0, heartbeats: 0, chunks: 0,
      reasons: new Map(), latencies: [], submitLat: [], firstStart: 0, lastEnd: 0, open: 0,
    };
    this.loadStats = st;
    const fail = (reason, detail) => {
      st.failed++;
      let r = st.reasons.get(reason);
      if (!r) { r = { count: 0, examples: [] }; st.reasons.set(reason, r); }
      r.count++;
      if (r.examples.length < 3 && detail) r.examples.push(String(detail).slice(0, 300));
    };

    const one = (i) => new Promise((resolve) => {
      const t0 = Date.now();
      if (!st.firstStart) st.firstStart = t0;
      st.started++;
      st.open++;
      const body = JSON.stringify({
        model: o.model, stream: true,
        messages: [{ role: 'user', content: `gen-load ${runId} request ${i}: a paper boat drifting down a rainy street, cinematic` }],
      });
      let settled = false;
      let buf = '';
      let gotVideo = false;
      let gotDone = false;
      let errEvent = null;
      let submittedSeen = false;
      let lastEvent = null;
      const finish = (reason, detail) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        st.open--;
        st.lastEnd = Date.now();
        if (!reason) {
          st.completed++;
          st.latencies.push(Date.now() - t0);
        } else {
          fail(reason, detail);
        }
        resolve();
      };
      const deadline = setTimeout(() => {
        finish('client_deadline', `no result within ${o.timeout} s; last event: ${lastEvent}`);
        req.destroy();
      }, o.timeout * 1000);
      const onEvent = (data) => {
        lastEvent = data.length > 200 ? `${data.slice(0, 200)}…` : data;
        st.chunks++;
        if (data === '[DONE]') { gotDone = true; return; }
        let ev;
        try { ev = JSON.parse(data); } catch (_) { errEvent = errEvent || { reason: 'bad_json_event', detail: data }; return; }
        if (ev && ev.error) {
          errEvent = errEvent || { reason: `error:${ev.error.code || ev.error.type || 'unknown'}`, detail: ev.error.message };
          return;
        }
        const ch = ev && ev.choices && ev.choices[0];
        const delta = ch && ch.delta;
        if (!delta) return;
        const rc = delta.reasoning_content;
        const rcText = typeof rc === 'string' ? rc : rc && typeof rc === 'object' ? String(rc.message || '') : '';
        if (!submittedSeen && /submitted/i.test(rcText)) {
          submittedSeen = true;
          st.submitted++;
          st.submitLat.push(Date.now() - t0);
        }
        if (typeof delta.content === 'string' && delta.content) {
          let c;
          try { c = JSON.parse(delta.content); } catch (_) {
            errEvent = errEvent || { reason: 'content_not_json', detail: delta.content };
            return;
          }
          if (c && c.type === 'video' && typeof c.url === 'string' && c.url) gotVideo = true;
          else if (c && c.type === 'error') errEvent = errEvent || { reason: 'result:error', detail: c.error };
          else errEvent = errEvent || { reason: `result:${c && c.type}`, detail: delta.content };
        }
      };
      const req = http.request({
        host: '127.0.0.1', port: this.port, path: '/v1/chat/completions', method: 'POST', agent,
        headers: {
          Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body), Accept: 'text/event-stream',
        },
      }, (res) => {
        st.headers++;
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let text = '';
          res.on('data', (d) => { if (text.length < 2000) text += d; });
          res.on('end', () => {
            let code = '';
            try { const j = JSON.parse(text); code = (j.error && (j.error.code || j.error.type)) || j.detail || ''; } catch (_) { /* not JSON */ }
            finish(`http_${res.statusCode}${code ? `:${code}` : ''}`, text.slice(0, 300));
          });
          res.on('error', (e) => finish(`http_${res.statusCode}`, e.message));
          return;
        }
        if (!/^text\/event-stream/.test(res.headers['content-type'] || '')) {
          finish('not_event_stream', res.headers['content-type']);
          req.destroy();
          return;
        }
        res.on('data', (d) => {
          buf += d;
          let k;
          while ((k = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, k);
            buf = buf.slice(k + 2);
            const data = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('data: ')) data.push(line.slice(6));
              else if (line.startsWith('data:')) data.push(line.slice(5));
              else if (line.startsWith(':')) st.heartbeats++;
            }
            if (data.length) onEvent(data.join('\n'));
          }
        });
        res.on('end', () => {
          if (errEvent) finish(errEvent.reason, errEvent.detail);
          else if (gotVideo && gotDone) finish(null);
          else if (gotVideo) finish('no_done', 'video result but no [DONE]');
          else if (gotDone) finish('no_video_result', `[DONE] without a video result; last: ${lastEvent}`);
          else finish('stream_ended_early', `last event: ${lastEvent}`);
        });
        res.on('aborted', () => finish('stream_aborted', `last event: ${lastEvent}`));
        res.on('error', (e) => finish(`stream_error:${e.code || 'error'}`, e.message));
      });
      req.setTimeout(o.idleTimeout * 1000, () => {
        finish('idle_timeout', `nothing for ${o.idleTimeout} s; last event: ${lastEvent}`);
        req.destroy();
      });
      req.on('error', (e) => finish(`socket:${e.code || 'error'}`, e.message));
      req.end(body);
    });

    log(`load: ${o.streams} streams, model ${o.model}, ${o.tokens} tokens x ${o.perToken}, fake duration ${o.duration} s,`
      + ` poll ${o.pollMs} ms, ${o.workers} workers`);
    const progress = o.quiet ? null : setInterval(() => {
      const s = this.sampler;
      log(`t=${((Date.now() - st.firstStart) / 1000).toFixed(0)}s started=${st.started} answered=${st.headers}`
        + ` submitted=${st.submitted} open=${st.open} completed=${st.completed} failed=${st.failed}`
        + ` rss=${fmtMB(s.lastRss)} pss=${fmtMB(s.lastPss)}`
        + (s.timeline.length ? ` cpu% master=${s.timeline[s.timeline.length - 1].master_cpu_pct}`
          + ` workers=${s.timeline[s.timeline.length - 1].workers_cpu_pct} fake=${s.timeline[s.timeline.length - 1].fake_cpu_pct}` : ''));
    }, 5000);
    const all = [];
    for (let i = 0; i < o.streams; i++) {
      all.push(one(i));
      if (o.rampMs > 0) {
        const due = st.firstStart + ((i + 1) * o.rampMs) / o.streams;
        const wait = due - Date.now();
        if (wait > 1) await sleep(wait);
      } else if (i % 500 === 499) {
        await new Promise((r) => setImmediate(r)); // let answers in while starting
      }
    }
    await Promise.all(all);
    if (progress) clearInterval(progress);
    agent.destroy();
  }

  /* --------------------------------------------------------- analysis */

  coalescing(dump) {
    const o = this.o;
    const routeIdx = (re) => dump.routes.map((r, i) => (re.test(r) ? i : -1)).filter((i) => i >= 0);
    const classes = {
      pending: { ids: new Set(routeIdx(/^GET \/backend\/nf\/pending(\/v2)?$/)), firstPageOnly: false },
      drafts: { ids: new Set(routeIdx(/^GET \/backend\/project_y\/profile\/drafts$/)), firstPageOnly: true },
      recent_tasks: { ids: new Set(routeIdx(/^GET \/backend\/v2\/recent_tasks$/)), firstPageOnly: false },
    };
    const window = o.pollMs * 0.9; // 10 % scheduling slack
    const out = { window_ms: window, poll_interval_ms: o.pollMs };
    let unattributed = 0;
    for (const [name, cls] of Object.entries(classes)) {
      const perWorker = new Map(); // `${worker}|${tok}` -> times
      const perTok = new Map();
      let n = 0;
      for (let i = 0; i < dump.t.length; i++) {
        if (!cls.ids.has(dump.r[i])) continue;
        if (cls.firstPageOnly && dump.c[i]) continue;
        n++;
        const w = this.portWorker.get(dump.p[i]);
        if (w === undefined) unattributed++;
        const key = `${w === undefined ? '?' : w}|${dump.k[i]}`;
        if (!perWorker.has(key)) perWorker.set(key, []);
        perWorker.get(key).push(dump.t[i]);
        if (!perTok.has(dump.k[i])) perTok.set(dump.k[i], []);
        perTok.get(dump.k[i]).push(dump.t[i]);
      }
      // Most requests within any window of `len` ms (times sorted).
      const maxIn = (times, len) => {
        let best = times.length ? 1 : 0;
        let j = 0;
        for (let i = 0; i < times.length; i++) {
          while (times[i] - times[j] >= len) j++;
          best = Math.max(best, i - j + 1);
        }
        return best;
      };
      const SUSTAINED_K = 4;
      let maxPerWorker = 0;
      let over = 0;
      let maxSustained = 0;
      let sustainedOver = 0;
      let maxRate = null;
      let minGap = Infinity;
      let shortGaps = 0;
      const gaps = [];
      for (const times of perWorker.values()) {
        times.sort((a, b) => a - b);
        const m = maxIn(times, window);
        maxPerWorker = Math.max(maxPerWorker, m);
        if (m > 1) over++;
        const ms = maxIn(times, SUSTAINED_K * o.pollMs);
        maxSustained = Math.max(maxSustained, ms);
        if (ms > SUSTAINED_K + 1) sustainedOver++;
        if (times.length >= 4) {
          const span = times[times.length - 1] - times[0];
          maxRate = Math.max(maxRate || 0, span > 0 ? ((times.length - 1) * o.pollMs) / span : Infinity);
        }
        for (let i = 1; i < times.length; i++) {
          const g = times[i] - times[i - 1];
          gaps.push(g);
          minGap = Math.min(minGap, g);
          if (g < window) shortGaps++;
        }
      }
      let maxPerToken = 0;
      for (const times of perTok.values()) {
        times.sort((a, b) => a - b);
        maxPerToken = Math.max(maxPerToken, maxIn(times, window));
      }
      gaps.sort((a, b) => a - b);
      out[name] = {
        requests: n, tokens: perTok.size, worker_token_pairs: perWorker.size,
        // Strict: arrival times at the fake, window 0.9 x interval.
        max_per_worker_token_per_interval: maxPerWorker, pairs_over_one: over,
        max_per_token_per_interval_all_workers: maxPerToken,
        // Sustained: at most K + 1 within K intervals when every request
        // is issued at least one interval after the previous one, however
        // late some arrive (queueing between the worker and the fake).
        sustained_k: SUSTAINED_K,
        max_per_worker_token_per_k_intervals: maxSustained, pairs_over_k_plus_one: sustainedOver,
        max_rate_per_interval: maxRate === null ? null : Number.isFinite(maxRate) ? Number(maxRate.toFixed(3)) : 'inf',
        gaps: gaps.length, gaps_under_window: shortGaps,
        min_gap_ms: Number.isFinite(minGap) ? minGap : null, p1_gap_ms: gaps.length ? pct(gaps, 1) : null,
        median_gap_ms: gaps.length ? pct(gaps, 50) : null,
      };
    }
    out.unattributed_requests = unattributed;
    return out;
  }

  // The master's notice at exit: how often the shm lock was taken over
  // the whole run (import included) and its longest hold, with the
  // function that held it (see docs/locking.md).
  shmLockStats() {
    const m = /shm lock: (\d+) holds, (\d+) us in all, longest (\d+) us in (\S+) \(pid (\d+)\)/.exec(this.readLog());
    if (!m) return null;
    const holds = Number(m[1]);
    const totalUs = Number(m[2]);
    const sites = [];
    const re = /shm lock site (\S+): (\d+) holds, (\d+) us in all, longest (\d+) us \(pid (\d+)\)/g;
    for (let x = re.exec(this.readLog()); x; x = re.exec(this.readLog())) {
      sites.push({ site: x[1], holds: Number(x[2]), total_us: Number(x[3]), longest_us: Number(x[4]), pid: Number(x[5]) });
    }
    sites.sort((a, b) => b.longest_us - a.longest_us);
    return {
      holds, total_us: totalUs, mean_us: holds ? Number((totalUs / holds).toFixed(2)) : 0,
      longest_us: Number(m[3]), longest_site: m[4], longest_pid: Number(m[5]), sites,
    };
  }

  logProblems() {
    const lines = this.readLog().split('\n').filter((l) => /\[(warn|error|crit|alert|emerg)\]/.test(l));
    const groups = new Map();
    for (const l of lines) {
      if (/admin password is still the default|API key is still the shipped default/.test(l)) continue;
      const key = l.replace(/^\S+ \S+ /, '').replace(/\b[0-9a-f]{8,}\b/g, '#').replace(/\d+/g, 'N');
      const g = groups.get(key) || { count: 0, example: l };
      g.count++;
      groups.set(key, g);
    }
    return [...groups.values()].sort((a, b) => b.count - a.count);
  }

  /* ------------------------------------------------------------- main */

  async run() {
    const o = this.o;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sora2api-genload-'));
    if (process.env.GEN_LOAD_PIDFILE) {
      try {
        fs.appendFileSync(process.env.GEN_LOAD_PIDFILE, `dir ${this.dir}\n${o.keep ? `keep ${this.dir}\n` : ''}`);
      } catch (_) { /* best effort */ }
    }
    this.cleanups.push(() => {
      if (o.keep) log(`kept ${this.dir}`);
      else fs.rmSync(this.dir, { recursive: true, force: true });
    });
    log(`${new Date().toISOString()} ${os.release()}, ${os.cpus().length} CPUs, node ${process.version}; dir ${this.dir}`);
    await this.startFake();
    await this.startDaemon();
    log(`fake on 127.0.0.1:${this.fakePort}, daemon on 127.0.0.1:${this.port} (master ${this.master}, workers ${this.initialWorkers.join(' ')})`);
    await this.admin();
    this.startSampler();
    await this.loadTokens();

    if (o.setupOnly) {
      const m = await request(this.base, 'GET', '/v1/models', { headers: { Authorization: `Bearer ${API_KEY}` } });
      const probe = await request(this.base, 'POST', '/v1/chat/completions', {
        headers: { Authorization: `Bearer ${API_KEY}` },
        body: { model: o.model, stream: true, messages: [{ role: 'user', content: 'gen-load probe' }] },
        timeout: (o.duration + 120) * 1000,
      });
      this.samplerTick();
      this.result.setup_only = {
        models_status: m.status, chat_status: probe.status, chat_body: probe.text.slice(0, 2000),
        rss_kb: this.sampler.lastRss, pss_kb: this.sampler.lastPss,
      };
      log(`setup-only: GET /v1/models ${m.status}; POST /v1/chat/completions ${probe.status}: ${probe.text.slice(0, 400).replace(/\n/g, '\\n')}`);
      log(`setup-only: daemon RSS sum ${fmtMB(this.sampler.lastRss)}, PSS sum ${fmtMB(this.sampler.lastPss)} with ${o.tokens} tokens`);
      await this.finish();
      return;
    }

    const before = await this.ctl('GET', '/stats');
    await this.fakeCall('record', { on: true, reset: true });
    this.markLoadStart();
    this.samplerTick();
    const fdLimit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
    if (Number.isFinite(fdLimit) && fdLimit < o.streams + 256) {
      log(`warning: ulimit -n is ${fdLimit}, under ${o.streams} streams + slack: raise it (bench/gen-load.sh does)`);
    }
    await this.load();
    const st = this.loadStats;
    const wallMs = st.lastEnd - st.firstStart;
    this.samplerTick();
    // Anything the pollers still had in flight lands within a poll
    // interval; the master may still be writing records: wait until the
    // daemon is quiet (under 5 % of a CPU over 1 s, at most 120 s) so that
    // the CPU figure covers all the work the generations caused.
    await sleep(Math.min(3000, o.pollMs + 500));
    const daemonTicks = () => [this.master, ...childPids(this.master)]
      .reduce((a, pid) => a + ((readStat(pid) || {}).ticks || 0), 0);
    let quietAt = Date.now();
    for (let prev = daemonTicks(), i = 0; i < 120; i++) {
      await sleep(1000);
      const now = daemonTicks();
      if (now - prev < 0.05 * CLK_TCK) break;
      prev = now;
      quietAt = Date.now();
    }
    this.settleS = Math.max(0, (quietAt - st.lastEnd) / 1000);
    this.samplerTick();
    this.scanPorts(childPids(this.master));
    const cpu = this.cpuSeconds();
    const fakeTicks1 = (readStat(this.fakeProc.pid) || {}).ticks;
    const self = process.cpuUsage(this.selfCpu0);
    await this.fakeCall('record', { on: false });
    const after = await this.ctl('GET', '/stats');
    const dump = await this.fakeCall('dump');
    clearInterval(this.samplerTimer);

    // Upstream requests during the load, per route.
    const routes = {};
    for (const [k, v] of Object.entries(after.by_route)) {
      const b = before.by_route[k];
      const n = v.count - (b ? b.count : 0);
      if (n <= 0) continue;
      const statuses = {};
      for (const [s, c] of Object.entries(v.statuses)) {
        const d = c - ((b && b.statuses[s]) || 0);
        if (d > 0) statuses[s] = d;
      }
      routes[k] = { count: n, statuses };
    }
    const sumRoutes = (re) => Object.entries(routes).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v.count, 0);
    const upstream = {
      total: after.requests_total - before.requests_total,
      create: sumRoutes(/^POST \/backend\/nf\/create$/),
      pending: sumRoutes(/^GET \/backend\/nf\/pending(\/v2)?$/),
      drafts: sumRoutes(/^GET \/backend\/project_y\/profile\/drafts$/),
    };
    upstream.other = upstream.total - upstream.create - upstream.pending - upstream.drafts;
    const per = (n) => (st.completed ? n / st.completed : NaN);
    const workersNow = childPids(this.master).sort((a, b) => a - b);
    const lat = st.latencies.slice().sort((a, b) => a - b);
    const sub = st.submitLat.slice().sort((a, b) => a - b);
    const coal = this.coalescing(dump);
    if (o.dump) {
      fs.writeFileSync(o.dump, JSON.stringify({
        poll_interval_ms: o.pollMs, routes: dump.routes, t: dump.t, r: dump.r, k: dump.k, c: dump.c,
        w: dump.p.map((p) => this.portWorker.get(p) || 0),
      }));
    }

    Object.assign(this.result, {
      completions: st.completed,
      failures: st.failed,
      failure_reasons: Object.fromEntries([...st.reasons].map(([k, v]) => [k, v])),
      wall_s: wallMs / 1000,
      latency_s: { p50: pct(lat, 50) / 1000, p90: pct(lat, 90) / 1000, p99: pct(lat, 99) / 1000, max: lat.length ? lat[lat.length - 1] / 1000 : NaN },
      submitted_latency_s: { p50: pct(sub, 50) / 1000, p90: pct(sub, 90) / 1000, max: sub.length ? sub[sub.length - 1] / 1000 : NaN },
      heartbeats: st.heartbeats,
      events: st.chunks,
      memory: {
        peak_rss_sum_kb: this.sampler.peakRss, peak_pss_sum_kb: this.sampler.peakPss,
        samples: this.sampler.samples, peak_worker_fds: this.sampler.peakFds,
        timeline: this.sampler.timeline,
        per_process: cpu.per,
      },
      cpu: {
        daemon_s: cpu.total, per_generation_s: per(cpu.total), clk_tck: CLK_TCK,
        busy_after_last_completion_s: this.settleS,
        fake_s: (fakeTicks1 - this.fakeTicks0) / CLK_TCK,
        client_s: (self.user + self.system) / 1e6,
      },
      upstream: {
        ...upstream,
        per_generation: {
          total: per(upstream.total), create: per(upstream.create), pending: per(upstream.pending),
          drafts: per(upstream.drafts), other: per(upstream.other),
        },
        by_route: routes,
        fake_counters: after.counters,
      },
      coalescing: coal,
      workers: { initial: this.initialWorkers, final: workersNow, sets_seen: [...this.sampler.workerSets] },
    });
    if (st.failed) this.problems.push(`${st.failed} of ${o.streams} generations failed`);
    if (this.daemonExit) this.problems.push(`the daemon exited during the run: ${JSON.stringify(this.daemonExit)}`);
    if (this.sampler.workerSets.size > 1 || workersNow.join(',') !== this.initialWorkers.join(',')) {
      this.problems.push(`worker processes changed during the run: ${[...this.sampler.workerSets].join(' / ')}`);
    }
    if (this.sampler.peakRss >= RSS_TARGET_KB) this.missed.push(`peak RSS sum ${fmtMB(this.sampler.peakRss)} is not under 256 MB`);
    for (const k of ['pending', 'drafts']) {
      const c = coal[k];
      if (c.max_per_worker_token_per_k_intervals > c.sustained_k + 1) {
        this.missed.push(`${k}: up to ${c.max_per_worker_token_per_k_intervals} requests for one token by one worker`
          + ` within ${c.sustained_k} poll intervals (more than one per interval)`);
      }
    }
    await this.finish();
  }

  async finish() {
    const ex = await this.stopDaemon();
    const logIssues = this.logProblems();
    this.result.daemon_exit = ex;
    this.result.shm_lock = this.shmLockStats();
    this.result.daemon_log = logIssues.slice(0, 30).map((g) => ({ count: g.count, example: g.example }));
    if (ex && (ex.code !== 0 || ex.signal)) this.problems.push(`the daemon exited ${JSON.stringify(ex)} on SIGTERM`);
    const sanitizer = this.daemonOut.split('\n').filter((l) => /AddressSanitizer|LeakSanitizer|runtime error:/.test(l));
    if (sanitizer.length) this.problems.push(`sanitizer reports: ${sanitizer.slice(0, 5).join(' | ')}`);
    if (logIssues.some((g) => /\[(error|crit|alert|emerg)\]/.test(g.example))) {
      this.problems.push('the daemon logged errors (see "daemon log" above)');
    }
    this.result.problems = this.problems;
    this.result.targets_missed = this.missed;
    this.report();
  }

  report() {
    const r = this.result;
    const o = this.o;
    const w = (s) => process.stdout.write(`${s}\n`);
    w('');
    w(`gen-load: T = ${fmtInt(o.tokens)} tokens, N = ${fmtInt(o.streams)} streams, ${o.workers} workers,`
      + ` fake duration ${o.duration} s, poll ${o.pollMs} ms`);
    if (r.setup) w(`  setup: ${fmtInt(r.setup.accounts)} tokens imported in ${fmtNum(r.setup.import_s, 1)} s`);
    if (r.completions !== undefined) {
      const rows = [
        ['completions', `${fmtInt(r.completions)} / ${fmtInt(o.streams)}`, `all ${fmtInt(o.streams)}`],
        ['failures', fmtInt(r.failures), '0'],
        ['wall time (first request to last completion)', `${fmtNum(r.wall_s, 1)} s`, ''],
        ['completion latency p50 / p90 / max', `${fmtNum(r.latency_s.p50, 1)} / ${fmtNum(r.latency_s.p90, 1)} / ${fmtNum(r.latency_s.max, 1)} s`, ''],
        ['"submitted" chunk p50 / p90 / max', `${fmtNum(r.submitted_latency_s.p50, 2)} / ${fmtNum(r.submitted_latency_s.p90, 2)} / ${fmtNum(r.submitted_latency_s.max, 2)} s`, ''],
        ['peak RSS sum (master + workers)', `${fmtInt(r.memory.peak_rss_sum_kb)} kB (${fmtMB(r.memory.peak_rss_sum_kb)})`, '< 256 MB'],
        ['peak PSS sum (master + workers)', `${fmtInt(r.memory.peak_pss_sum_kb)} kB (${fmtMB(r.memory.peak_pss_sum_kb)})`, ''],
        ['daemon CPU (user + system)', `${fmtNum(r.cpu.daemon_s, 2)} s`, ''],
        ['daemon busy after the last completion', `${fmtNum(r.cpu.busy_after_last_completion_s, 1)} s`, ''],
        ['daemon CPU per generation', `${fmtNum(r.cpu.per_generation_s * 1000, 3)} ms`, ''],
        ['fake / client CPU (for scale)', `${fmtNum(r.cpu.fake_s, 1)} s / ${fmtNum(r.cpu.client_s, 1)} s`, ''],
        ['upstream requests per generation', fmtNum(r.upstream.per_generation.total, 2), ''],
        ['  nf/create', `${fmtNum(r.upstream.per_generation.create, 3)} (${fmtInt(r.upstream.create)})`, ''],
        ['  nf/pending', `${fmtNum(r.upstream.per_generation.pending, 3)} (${fmtInt(r.upstream.pending)})`, ''],
        ['  drafts', `${fmtNum(r.upstream.per_generation.drafts, 3)} (${fmtInt(r.upstream.drafts)})`, ''],
        ['  other', `${fmtNum(r.upstream.per_generation.other, 3)} (${fmtInt(r.upstream.other)})`, ''],
        ['max nf/pending per worker-token in 4 intervals', fmtInt(r.coalescing.pending.max_per_worker_token_per_k_intervals), '<= 5'],
        ['max drafts rounds per worker-token in 4 intervals', fmtInt(r.coalescing.drafts.max_per_worker_token_per_k_intervals), '<= 5'],
        ['max nf/pending per worker-token in 0.9 interval', `${fmtInt(r.coalescing.pending.max_per_worker_token_per_interval)} (${fmtInt(r.coalescing.pending.gaps_under_window)} of ${fmtInt(r.coalescing.pending.gaps)} gaps shorter)`, '1 (arrival jitter aside)'],
        ['max drafts rounds per worker-token in 0.9 interval', `${fmtInt(r.coalescing.drafts.max_per_worker_token_per_interval)} (${fmtInt(r.coalescing.drafts.gaps_under_window)} of ${fmtInt(r.coalescing.drafts.gaps)} gaps shorter)`, '1 (arrival jitter aside)'],
      ];
      const wa = Math.max(...rows.map((x) => x[0].length));
      const wb = Math.max(...rows.map((x) => x[1].length));
      w(`  ${'figure'.padEnd(wa)} | ${'value'.padEnd(wb)} | target`);
      w(`  ${'-'.repeat(wa)}-+-${'-'.repeat(wb)}-+-------`);
      for (const [a, b, c] of rows) w(`  ${a.padEnd(wa)} | ${b.padEnd(wb)} | ${c}`);
      if (r.failures) {
        w('  failures by reason:');
        for (const [k, v] of Object.entries(r.failure_reasons).sort((a, b) => b[1].count - a[1].count)) {
          w(`    ${String(v.count).padStart(7)}  ${k}${v.examples.length ? `  e.g. ${v.examples[0]}` : ''}`);
        }
      }
      const c = r.coalescing;
      w(`  coalescing, from arrival times at the fake, per (worker, token); drafts counts first pages only`
        + ` (${fmtInt(c.unattributed_requests)} requests not attributed to a worker):`);
      for (const k of ['pending', 'drafts', 'recent_tasks']) {
        const x = c[k];
        if (!x.requests) continue;
        w(`    ${k.padEnd(12)} ${fmtInt(x.requests)} requests, ${fmtInt(x.tokens)} tokens, ${fmtInt(x.worker_token_pairs)} worker-token pairs;`
          + ` in 0.9 interval: max ${x.max_per_worker_token_per_interval} per worker-token (${x.pairs_over_one} pairs over 1),`
          + ` max ${x.max_per_token_per_interval_all_workers} per token over all workers;`
          + ` in ${x.sustained_k} intervals: max ${x.max_per_worker_token_per_k_intervals} (${x.pairs_over_k_plus_one} pairs over ${x.sustained_k + 1});`
          + ` highest mean rate ${x.max_rate_per_interval === null ? 'n/a' : x.max_rate_per_interval} per interval;`
          + ` gaps min ${x.min_gap_ms} / p1 ${x.p1_gap_ms} / median ${x.median_gap_ms} ms`);
      }
      w('  upstream routes during the load:');
      for (const [k, v] of Object.entries(r.upstream.by_route).sort((a, b) => b[1].count - a[1].count)) {
        w(`    ${String(v.count).padStart(8)}  ${k}  ${JSON.stringify(v.statuses)}`);
      }
      w('  per process (CPU over the load, peak RSS / PSS):');
      for (const p of r.memory.per_process) {
        w(`    ${p.role.padEnd(6)} pid ${String(p.pid).padEnd(8)} CPU ${fmtNum(p.cpu_s, 2).padStart(7)} s   RSS ${fmtMB(p.peak_rss_kb).padStart(9)}   PSS ${fmtMB(p.peak_pss_kb).padStart(9)}`);
      }
      const tl = r.memory.timeline;
      if (tl.length) {
        const stride = Math.max(1, Math.ceil(tl.length / 20));
        w('  timeline:     t | RSS sum  | PSS sum  | CPU % master workers fake | open   | completed');
        for (let i = 0; i < tl.length; i += stride) {
          const x = tl[i];
          w(`    ${fmtNum(x.t, 0).padStart(10)} s | ${fmtMB(x.rss_kb).padStart(8)} | ${fmtMB(x.pss_kb).padStart(8)} |`
            + `        ${String(x.master_cpu_pct).padStart(3)}     ${String(x.workers_cpu_pct).padStart(3)}  ${String(x.fake_cpu_pct).padStart(3)} |`
            + ` ${String(x.open).padStart(6)} | ${x.completed}`);
        }
      }
      w(`  heartbeats seen: ${fmtInt(r.heartbeats)}; SSE events: ${fmtInt(r.events)}; peak worker fds: ${fmtInt(r.memory.peak_worker_fds)}`);
    }
    if (r.setup_only) {
      w(`  setup-only probe: GET /v1/models ${r.setup_only.models_status}, POST /v1/chat/completions ${r.setup_only.chat_status}`);
      w(`  daemon RSS sum ${fmtMB(r.setup_only.rss_kb)}, PSS sum ${fmtMB(r.setup_only.pss_kb)}`);
    }
    if (r.shm_lock) {
      const k = r.shm_lock;
      w(`  shm lock: ${fmtInt(k.holds)} holds, ${fmtInt(k.total_us)} us in all (mean ${k.mean_us} us),`
        + ` longest ${fmtInt(k.longest_us)} us in ${k.longest_site} (pid ${k.longest_pid})`);
      for (const x of k.sites) {
        w(`    ${x.site.padEnd(34)} ${fmtInt(x.holds).padStart(9)} holds ${fmtInt(x.total_us).padStart(10)} us`
          + `  longest ${fmtInt(x.longest_us).padStart(8)} us (pid ${x.pid})`);
      }
    }
    w(`  daemon exit on SIGTERM: ${JSON.stringify(r.daemon_exit)}`);
    if (r.daemon_log.length) {
      w('  daemon log (warn and worse, grouped):');
      for (const g of r.daemon_log.slice(0, 15)) w(`    ${String(g.count).padStart(7)}x ${g.example.slice(0, 300)}`);
    } else {
      w('  daemon log: nothing at warn or worse');
    }
    for (const p of this.problems) w(`  PROBLEM: ${p}`);
    for (const m of this.missed) w(`  target missed: ${m}`);
    if (!this.problems.length && !this.missed.length && r.completions !== undefined) w('  all targets met');
    const json = JSON.stringify(r);
    if (o.json) fs.writeFileSync(o.json, `${JSON.stringify(r, null, 2)}\n`);
    w(`GEN_LOAD_JSON ${json}`);
  }

  async cleanup() {
    while (this.cleanups.length) {
      const f = this.cleanups.pop();
      try { await f(); } catch (e) { log(`cleanup: ${e.message}`); }
    }
  }
}

async function main() {
  if (process.argv[2] === '--fake-child') {
    await fakeChild();
    return;
  }
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`gen-load: ${e.message}\n`);
    process.exit(2);
  }
  const run = new Run(o);
  let stopping = false;
  const onSignal = (sig) => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: stopping`);
    if (run.agent) run.agent.destroy();
    run.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP'));
  process.on('exit', () => {
    // Last resort (an exit through a path that skipped cleanup).
    for (const p of [run.daemonProc, run.fakeProc]) {
      if (p && p.exitCode === null && p.signalCode === null) {
        try { p.kill('SIGKILL'); } catch (_) { /* gone */ }
      }
    }
  });
  let rc = 0;
  try {
    await run.run();
    if (run.problems.length) rc = 1;
    else if (run.missed.length && o.strict) rc = 1;
  } catch (e) {
    process.stderr.write(`gen-load: FAIL: ${e.fatal ? e.message : e.stack}\n`);
    const tail = run.readLog ? run.readLog().split('\n').slice(-15).join('\n') : '';
    if (tail.trim()) process.stderr.write(`--- last lines of the daemon's error log\n${tail}\n`);
    rc = 1;
  }
  await run.cleanup();
  process.exit(rc);
}

main();
