'use strict';
/* The command line: one "listening on" line, loopback only, clean exit on SIGTERM/SIGINT. */

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');

const SERVER = path.join(__dirname, '..', 'server.js');

/* Spawn the server; resolves to {child, port, stdout()} once the ready line is seen. */
function launch(args) {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`no ready line; stderr: ${err}`));
        }, 10000);
        child.stdout.on('data', (d) => {
            out += d;
            const m = /^listening on 127\.0\.0\.1:(\d+)\n/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve({ child, port: Number(m[1]), stdout: () => out });
            }
        });
        child.stderr.on('data', (d) => { err += d; });
        child.on('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`exited early with ${code}: ${err}`));
        });
    });
}

function exitOf(child) {
    return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

describe('command line', () => {
    for (const sig of ['SIGTERM', 'SIGINT']) {
        it(`prints one ready line, serves, and exits 0 on ${sig}`, async () => {
            const { child, port, stdout } = await launch(['--port', '0']);
            assert.ok(port > 0);
            const r = await fetch(`http://127.0.0.1:${port}/__fake/health`);
            assert.deepEqual(await r.json(), { ok: true, port });
            const done = exitOf(child);
            child.kill(sig);
            assert.deepEqual(await done, { code: 0, signal: null });
            assert.equal(stdout(), `listening on 127.0.0.1:${port}\n`, 'exactly one line on stdout');
        });
    }

    it('applies --sentinel and --journal-size', async () => {
        const { child, port } = await launch(['--port', '0', '--sentinel', 'off', '--journal-size', '3']);
        const cfg = await (await fetch(`http://127.0.0.1:${port}/__fake/config`)).json();
        assert.deepEqual([cfg.sentinel, cfg.journal_size], ['off', 3]);
        const done = exitOf(child);
        child.kill('SIGTERM');
        assert.equal((await done).code, 0);
    });

    it('refuses a non-loopback host and unknown arguments', async () => {
        const bad = spawn(process.execPath, [SERVER, '--host', '0.0.0.0'], { stdio: 'ignore' });
        assert.notEqual((await exitOf(bad)).code, 0);
        const unk = spawn(process.execPath, [SERVER, '--bogus'], { stdio: 'ignore' });
        assert.equal((await exitOf(unk)).code, 2);
    });
});
