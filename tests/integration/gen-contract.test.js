'use strict';
// The API contract's parsing examples (sora2api-README.zh.md, "解析示例
// (Python)" and "解析示例 (JavaScript)") read every stream the gateway
// sends without raising: successes, content-policy refusals, each failure
// code and a stop that cannot wait. The JavaScript example runs as
// written (console.log captured); the Python one runs under python3 when
// the machine has it.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { request, waitFor } = require('./lib/daemon');
const { stopPool } = require('./lib/fake');
const g = require('./lib/gen');

const { json, user } = g;

// The JavaScript example, verbatim but for `console`, which is passed in.
function makeJsExample(console) {
  async function parseStreamResponse(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();

    while (true) {
      const { done, value } = await reader.read();
      if (done) break;

      const lines = decoder.decode(value).split('\n');
      for (const line of lines) {
        if (!line.startsWith('data: ')) continue;

        const dataStr = line.slice(6);
        if (dataStr === '[DONE]') {
          console.log('Stream completed');
          continue;
        }

        const data = JSON.parse(dataStr);
        const delta = data.choices[0].delta;

        // 解析 reasoning_content (进度信息)
        const reasoning = delta.reasoning_content;
        if (reasoning) {
          console.log(`[${reasoning.stage}] ${reasoning.status}: ${reasoning.message}`);
          if (reasoning.progress !== undefined) {
            console.log(`  Progress: ${reasoning.progress}%`);
          }
          if (reasoning.details) {
            console.log('  Details:', reasoning.details);
          }
        }

        // 解析 content (最终结果 - JSON 格式)
        if (delta.content) {
          const result = JSON.parse(delta.content);

          switch (result.type) {
            case 'image':
              console.log(`图片生成成功: ${result.count} 张`);
              result.data.forEach(item => console.log(`  URL: ${item.url}`));
              break;
            case 'video':
              console.log(`视频生成成功: ${result.url}`);
              break;
            case 'character':
              console.log(`角色创建成功: @${result.username} (${result.display_name})`);
              console.log(`  cameo_id: ${result.cameo_id}`);
              console.log(`  character_id: ${result.character_id}`);
              break;
            case 'error':
              console.log(`生成失败: ${result.error}`);
              break;
          }
        }
      }
    }
  }
  return parseStreamResponse;
}

// The Python example, verbatim; its usage loop reads the lines of a file
// instead of response.iter_lines() and prints a marker per stream.
const PY_EXAMPLE = String.raw`import json

def parse_stream_response(line: str):
    """解析流式响应行"""
    if not line.startswith("data: "):
        return None
    
    data_str = line[6:]  # 移除 "data: " 前缀
    if data_str == "[DONE]":
        return {"done": True}
    
    data = json.loads(data_str)
    delta = data["choices"][0]["delta"]
    
    # 解析 reasoning_content (进度信息)
    reasoning = delta.get("reasoning_content")
    if reasoning:
        stage = reasoning.get("stage")
        status = reasoning.get("status")
        progress = reasoning.get("progress")
        message = reasoning.get("message")
        details = reasoning.get("details")
        
        print(f"[{stage}] {status}: {message}")
        if progress is not None:
            print(f"  Progress: {progress}%")
        if details:
            print(f"  Details: {details}")
    
    # 解析 content (最终结果 - JSON 格式)
    content = delta.get("content")
    if content:
        result = json.loads(content)
        result_type = result.get("type")
        
        if result_type == "image":
            print(f"图片生成成功: {result['count']} 张")
            for item in result["data"]:
                print(f"  URL: {item['url']}")
        
        elif result_type == "video":
            print(f"视频生成成功: {result['url']}")
        
        elif result_type == "character":
            print(f"角色创建成功: @{result['username']} ({result['display_name']})")
            print(f"  cameo_id: {result['cameo_id']}")
            print(f"  character_id: {result['character_id']}")
        
        elif result_type == "error":
            print(f"生成失败: {result['error']}")
    
    return data

import sys
for name in sys.argv[1:]:
    print("=== " + name)
    with open(name, "rb") as response:
        for line in response.read().split(b"\n"):
            if line:
                parse_stream_response(line.decode())
`;

// A fetch-like response whose body yields `pieces` one read at a time.
function fakeResponse(pieces) {
  const enc = new TextEncoder();
  let i = 0;
  return { body: { getReader: () => ({ read: async () => (i < pieces.length
    ? { done: false, value: enc.encode(pieces[i++]) } : { done: true, value: undefined }) }) } };
}

// Runs the JavaScript example over one stream, read whole and read one
// event at a time (the gateway writes an event with one write); returns
// what it logged.
async function runJs(text) {
  const out = [];
  const logger = { log: (...a) => out.push(a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ')) };
  await makeJsExample(logger)(fakeResponse([text]));
  const whole = out.join('\n');
  out.length = 0;
  await makeJsExample(logger)(fakeResponse(text.split(/(?<=\n\n)/)));
  assert.equal(out.join('\n'), whole, 'the same lines whether read whole or event by event');
  return whole;
}

let ctx;
let fake;
let d;
let nonce = 0;
const tag = (s) => `${s} [c${++nonce}]`;
const streams = [];

before(async () => {
  ctx = await g.startGenPool({ workers: 1, poll: 50 });
  ({ fake, d } = ctx);
});
after(() => stopPool(ctx));

async function fresh(tokens = 1) {
  await waitFor(async () => (await request(d.base, 'GET', '/__test/shm')).json.leases === 0, { what: 'no lease left' });
  await g.disarm(fake);
  await g.emptyPool(ctx);
  for (let i = 0; i < tokens; i++) await g.addToken(ctx, { video_concurrency: 3 }, { remaining: null });
}

const admin = (p, body) => request(d.base, 'POST', p, { headers: ctx.H, body: json(body) });

// Streams one request, checks the gateway's own framing, and keeps the
// text for the parsers. `expect` is what the examples must print last.
async function collect(name, body, expect) {
  const r = await g.chat(d, Object.assign({ stream: true }, body));
  const s = g.parseStream(r);
  streams.push({ name, text: r.text, expect });
  return s;
}

test('every kind of stream the gateway sends', async () => {
  await fresh();
  await collect('image', { model: 'sora-image', messages: user(tag('a cat')) }, /^  URL: http/);
  await collect('video', { model: 'sora-video-10s', messages: user(tag('a cat runs')) }, /^视频生成成功: http/);
  await collect('content policy', { model: 'sora-video-10s', messages: user(tag('#violate a mouse')) },
    /^生成失败: Content policy violation: /);
  await collect('rejected at submit', { model: 'sora-image', messages: user(tag('#reject this')) },
    /^生成失败: Content policy violation: /);
  let s = await collect('generation_failed', { model: 'sora-image', messages: user(tag('#fail')) }, /^生成失败: /);
  assert.equal(s.error.code, 'generation_failed');

  // Watermark-free and cache on: more progress stages, with details.
  assert.equal((await admin('/api/watermark-free/config', { watermark_free_enabled: true, parse_method: 'third_party',
    third_party_url: `${fake.url}/MP4/{post_id}.mp4` })).status, 200);
  assert.equal((await admin('/api/cache/enabled', { enabled: true })).status, 200);
  try {
    await collect('video, watermark-free, cached', { model: 'sora-video-10s', messages: user(tag('a dog')) },
      /^视频生成成功: http/);
  } finally {
    await admin('/api/watermark-free/config', { watermark_free_enabled: false });
    await admin('/api/cache/enabled', { enabled: false });
  }

  // Character creation (docs/characters.md): the character
  // result, a character+video, Sora rejecting the cameo, a taken name.
  const mp4 = Buffer.from(await (await fetch(`${fake.url}/media/c.mp4`)).arrayBuffer()).toString('base64');
  const videoPart = [{ type: 'video_url', video_url: { url: `data:video/mp4;base64,${mp4}` } }];
  s = await collect('character', { model: 'sora-video-10s', messages: user(videoPart),
    character_options: { username: 'contract_cat', display_name: '合同猫' } }, /^角色创建成功: @contract_cat \(合同猫\)$/);
  assert.equal(s.content.type, 'character');
  await collect('character + video', { model: 'sora-video-10s', messages: user([{ type: 'text', text: tag('runs') },
    ...videoPart]) }, /^视频生成成功: http/);
  await g.fakeCall(fake, 'POST', '/__fake/script', { next: { cameo: [{ outcome: 'rejected' }] } });
  s = await collect('character_failed', { model: 'sora-video-10s', messages: user(videoPart) }, /^生成失败: Sora rejected/);
  assert.equal(s.error.code, 'character_failed');
  s = await collect('username_taken', { model: 'sora-video-10s', messages: user(videoPart),
    character_options: { username: 'contract_cat' } }, /^生成失败: the username contract_cat is taken$/);
  assert.equal(s.error.code, 'username_taken');

  await fake.arm({ route: 'POST /backend/uploads', status: 500, times: -1 });
  const png = await g.pngBytes(fake);
  s = await collect('upload_failed', { model: 'sora-image', messages: user([{ type: 'text', text: tag('this') },
    { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }]) }, /^生成失败: /);
  assert.equal(s.error.code, 'upload_failed');
  await g.disarm(fake);

  await fake.arm({ route: 'GET /backend/nf/pending', preset: 'token_invalidated', skip: 1 });
  s = await collect('token_invalidated', { model: 'sora-video-10s', messages: user(tag('revoked')) }, /^生成失败: /);
  assert.equal(s.error.code, 'token_invalidated');

  await fresh(0);
  assert.equal((await admin('/api/admin/config', { queue_timeout: 0 })).status, 200);
  s = await collect('no_available_token', { model: 'sora-image', messages: user(tag('nobody')) }, /^生成失败: /);
  assert.equal(s.error.code, 'no_available_token');
});

test('generation_timeout and server_shutdown streams', async () => {
  await fresh();
  const { adminLogin } = require('./lib/daemon');
  // Below what the API accepts (60 s at least): straight into the shared
  // snapshot, through a test hook; the restart below publishes the
  // stored values again.
  const o = await request(d.base, 'POST', '/__test/shm-settings', { body: JSON.stringify({ image_timeout: 1, video_timeout: 1 }) });
  assert.equal(o.status, 200, o.text);
  let s = await collect('generation_timeout', { model: 'sora-image', messages: user(tag('#stall')) }, /^生成失败: /);
  assert.equal(s.error.code, 'generation_timeout');
  await d.stop();
  d.opts.conf.server.shutdown_timeout = '1';
  await d.start();
  ctx.H = await adminLogin(d);
  const pending = g.chat(d, { model: 'sora-video-10s', stream: true, messages: user(tag('#stall until stop')) });
  await waitFor(() => d.sqlite("SELECT COUNT(*) FROM tasks WHERE status = 'running'") === '1', { what: 'running' });
  const stopped = d.stop();
  const r = await pending;
  s = g.parseStream(r);
  assert.equal(s.error.code, 'server_shutdown');
  streams.push({ name: 'server_shutdown', text: r.text, expect: /^生成失败: the server is shutting down/ });
  assert.equal((await stopped).code, 0);
  delete d.opts.conf.server.shutdown_timeout;
  await d.start();
});

test('the JavaScript example reads every stream without throwing', async () => {
  assert.ok(streams.length >= 10, `${streams.length} streams collected`);
  for (const { name, text, expect } of streams) {
    let out;
    try {
      out = await runJs(text);
    } catch (e) {
      assert.fail(`${name}: the JavaScript example threw ${e.stack}\non:\n${text}`);
    }
    const lines = out.split('\n');
    assert.equal(lines[lines.length - 1], 'Stream completed', `${name}:\n${out}`);
    assert.ok(lines.some((l) => expect.test(l)), `${name}: ${expect} in\n${out}`);
  }
});

function havePython() {
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (_) {
    return false;
  }
}

test('the Python example reads every stream without raising', { skip: !havePython() && 'no python3' }, () => {
  assert.ok(streams.length >= 10);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 's2a-contract-'));
  try {
    const script = path.join(dir, 'parse.py');
    fs.writeFileSync(script, PY_EXAMPLE);
    const files = streams.map((s, i) => {
      const f = path.join(dir, `stream-${i}.txt`);
      fs.writeFileSync(f, s.text);
      return f;
    });
    let out;
    try {
      out = execFileSync('python3', [script, ...files], { encoding: 'utf8', env: Object.assign({}, process.env,
        { PYTHONIOENCODING: 'utf-8' }), stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      assert.fail(`the Python example raised:\n${e.stderr}\n${e.stdout}`);
    }
    const parts = out.split(/^=== .*$/m).slice(1);
    assert.equal(parts.length, streams.length, out);
    streams.forEach(({ name, expect }, i) => {
      assert.ok(parts[i].split('\n').some((l) => expect.test(l)), `${name}: ${expect} in\n${parts[i]}`);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
