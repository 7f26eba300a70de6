'use strict';
// Peak worker memory (VmHWM) around one unauthenticated 64 MiB JSON body
// to /api/login. Run: S2A_BUILDDIR=build node bench/body-memory.js
const fs = require('node:fs');
const net = require('node:net');
const { Daemon, sleep } = require('../tests/integration/lib/daemon');

function hwm(d) {
  return d.workers().map((pid) => Number(/VmHWM:\s+(\d+)/.exec(
    fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1])).reduce((a, v) => a + v, 0);
}

function send(port, len) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const piece = Buffer.alloc(1 << 20, 0x20);
    let sent = 0;
    let data = '';
    const pump = () => {
      while (sent < len && !s.destroyed) {
        sent += piece.length;
        if (!s.write(piece)) { s.once('drain', pump); return; }
      }
    };
    s.on('connect', () => {
      s.write(`POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`);
      pump();
    });
    s.on('data', (c) => { data += c; });
    s.on('error', () => {});
    s.on('close', () => resolve(data.split('\r\n')[0]));
    setTimeout(() => { s.destroy(); }, 15000);
  });
}

(async () => {
  const d = await new Daemon({ conf: { server: { workers: '1' } } }).start();
  const before = hwm(d);
  const status = await send(d.port, 64 << 20);
  await sleep(300);
  console.log(`answer: ${status || '(none)'}; worker VmHWM ${before} kB -> ${hwm(d)} kB`);
  await d.stop();
  d.cleanup();
})();
