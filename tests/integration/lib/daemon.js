'use strict';
// Test harness: starts the real sora2apid (master + workers) on a free
// loopback port with its own temporary directories, and stops it.
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BUILDDIR = process.env.S2A_BUILDDIR || 'build';
const BIN = path.resolve(ROOT, BUILDDIR, 'sora2apid');
// The bound on event-loop lag the hardening tests hold a worker to:
// 100 ms, with room for the several-fold slowdown of a sanitizer build.
const SANITIZED = /asan|san/.test(BUILDDIR);
const LAG_BOUND_MS = SANITIZED ? 400 : 100;

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

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}: ${last && last.message ? last.message : last}`);
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

// Children of a process, from /proc.
function childPids(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(d));
    } catch (_) { /* raced with exit */ }
  }
  return out.sort((a, b) => a - b);
}

class Daemon {
  constructor(opts = {}) {
    this.opts = opts;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 's2a-test-'));
    this.logFile = path.join(this.dir, 'error.log');
    this.accessLog = path.join(this.dir, 'access.log');
    this.confFile = path.join(this.dir, 'sora2api.conf');
    this.pidFile = path.join(this.dir, 'sora2apid.pid');
    this.allowedErrors = opts.allowedErrors || [];
  }

  confText(overrides = {}) {
    const sections = {
      server: {
        listen: `127.0.0.1:${this.port}`,
        workers: '2',
        pidfile: this.pidFile,
        shutdown_timeout: '10',
        client_timeout: '5',
      },
      paths: {
        data_dir: path.join(this.dir, 'data'),
        cache_dir: path.join(this.dir, 'cache'),
        admin_ui_dir: path.join(this.dir, 'ui'),
      },
      log: { error_log: this.logFile, access_log: this.accessLog, level: 'info' },
    };
    for (const [sec, kv] of Object.entries(overrides)) {
      sections[sec] = Object.assign(sections[sec] || {}, kv);
    }
    let text = '';
    for (const [sec, kv] of Object.entries(sections)) {
      text += `[${sec}]\n`;
      for (const [k, v] of Object.entries(kv)) text += `${k} = ${v}\n`;
    }
    return text;
  }

  writeConf(overrides) {
    fs.writeFileSync(this.confFile, this.confText(Object.assign({}, this.opts.conf || {}, overrides)));
  }

  async start() {
    this.port = this.opts.port || this.port || (await freePort());
    fs.mkdirSync(path.join(this.dir, 'ui'), { recursive: true });
    this.writeConf();
    const env = Object.assign({}, process.env, this.opts.env || {});
    const logStart = this.log().length;   // a restart appends to the same log
    this.proc = spawn(BIN, ['-f', '-c', this.confFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.output = '';
    this.proc.stdout.on('data', (d) => { this.output += d; });
    this.proc.stderr.on('data', (d) => { this.output += d; });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => resolve({ code, signal }));
    });
    this.pid = this.proc.pid;
    await waitFor(() => this.log().slice(logStart).includes('ready:'), { what: `daemon ready\n${this.output}` });
    this.base = `http://127.0.0.1:${this.port}`;
    return this;
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch (_) {
      return '';
    }
  }

  workers() {
    return childPids(this.pid);
  }

  // Sends a signal to the master and waits for exit.
  async stop(signal = 'SIGTERM', timeout = 15000) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) {
      return this.exited;
    }
    this.proc.kill(signal);
    let timer;
    const res = await Promise.race([
      this.exited,
      new Promise((r) => { timer = setTimeout(() => r(null), timeout); }),
    ]);
    clearTimeout(timer);
    if (res === null) {
      this.proc.kill('SIGKILL');
      throw new Error('daemon did not stop in time');
    }
    return res;
  }

  // Lines at error level or worse that the test did not expect.
  // Sanitizer reports (ASan/UBSan/LSan) on stderr count too.
  unexpectedErrors() {
    const logged = this.log().split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l))
      .filter((l) => !this.allowedErrors.some((re) => re.test(l)));
    const sanitizer = (this.output || '').split('\n')
      .filter((l) => /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/.test(l));
    return logged.concat(sanitizer);
  }

  cleanup() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      try { this.proc.kill('SIGKILL'); } catch (_) { /* gone */ }
    }
    if (!process.env.S2A_KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  sqlite(sql) {
    return execFileSync('sqlite3', [path.join(this.dir, 'data', 'sora2api.db'), sql], { encoding: 'utf8' }).trim();
  }
}

// One HTTP request; resolves {status, headers, body, json}.
function request(base, method, p, { headers = {}, body, agent, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, base);
    const req = http.request({
      hostname: u.hostname, port: u.port, path: u.pathname + u.search, method,
      headers, agent: agent === undefined ? false : agent, timeout,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        let json;
        try { json = JSON.parse(buf.toString('utf8')); } catch (_) { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8'), json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// A raw TCP exchange: sends `data`, collects until close or timeout.
function raw(port, data, { timeout = 5000, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const started = Date.now();
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), why, ms: Date.now() - started });
    };
    sock.on('connect', () => { if (data) sock.write(data); });
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => finish('end'));
    sock.on('close', () => finish('close'));
    sock.on('error', (e) => finish(`error ${e.code}`));
    setTimeout(() => finish('timeout'), timeout);
    if (!keepOpen) { /* nothing */ }
  });
}

const AUTH = { Authorization: 'Bearer han1234' };

// Logs in with the default admin account; returns the Authorization header.
async function adminLogin(d) {
  const r = await request(d.base, 'POST', '/api/login', {
    body: JSON.stringify({ username: 'admin', password: 'admin' }),
  });
  if (r.status !== 200) throw new Error(`admin login failed: ${r.text}`);
  return { Authorization: `Bearer ${r.json.token}` };
}

// After bad input: the daemon still answers /healthz at once, with the
// same workers (none crashed and was replaced). `workers`: d.workers()
// taken before the bad input.
async function assertServing(d, workers) {
  const r = await request(d.base, 'GET', '/healthz', { timeout: 2000 });
  if (r.status !== 200) throw new Error(`/healthz answered ${r.status} after bad input`);
  const now = d.workers();
  if (JSON.stringify(now) !== JSON.stringify(workers)) {
    throw new Error(`workers changed after bad input: ${workers} -> ${now}`);
  }
}

module.exports = { Daemon, assertServing, request, raw, freePort, sleep, waitFor, pidAlive, childPids, BIN, ROOT, AUTH, adminLogin, LAG_BOUND_MS, SANITIZED };
