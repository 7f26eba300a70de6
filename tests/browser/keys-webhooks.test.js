'use strict';
// The admin UI's pages for named API keys and webhooks, and the token
// group, in a real browser (headless chromium) against the real daemon
// and the fake upstream: a webhook created (its secret shown once),
// refused edits at their fields, a test event delivered to a receiver on
// loopback and seen live in the deliveries table, a failing receiver, a
// disabled endpoint, rotation, deletion; a key created with limits (shown
// once), used from here and its live counters and usage moving on the
// page, a refused and a good edit, disabled, its usage and CSV, deleted;
// a token's group set in the edit and batch forms and used by the key.
// No request may leave for another host; console errors and CSP
// refusals fail the file.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { request, waitFor } = require('../integration/lib/daemon');
const g = require('../integration/lib/gen');
const { startUiPool, login, openBrowser, uiLogin, unlabelled } = require('./lib/browser');

const json = (o) => JSON.stringify(o);
const PASSWORD = 'keys and hooks 1';
let ctx;
let d;
let fake;
let b;
let page;
let H;
let recv;

// A webhook receiver on loopback: every POST is kept; /fail answers 500.
async function startReceiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      got.push({ path: req.url, headers: req.headers, body });
      res.statusCode = req.url === '/fail' ? 500 : 200;
      res.end('ok');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    got,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

before(async () => {
  ctx = await startUiPool({ sections: { webhooks: { allow_private: 'yes', retry_base: '1' } } });
  ({ d, fake } = ctx);
  const r = await request(d.base, 'POST', '/api/admin/password', {
    headers: ctx.H, body: json({ old_password: 'admin', new_password: PASSWORD }),
  });
  assert.equal(r.status, 200, r.text);
  H = await login(d, 'admin', PASSWORD);
  recv = await startReceiver();
  b = await openBrowser(d.base);
  ({ page } = b);
  await b.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: d.base });
  await uiLogin(page, d.base, PASSWORD);
});

after(async () => {
  if (b) await b.close();
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
  await fake.close();
  if (recv) await recv.close();
});

const api = (method, p, body) => request(d.base, method, p, { headers: H, body: body === undefined ? undefined : json(body), timeout: 30000 });
const toast = (text) => page.locator('.toast', { hasText: text }).last();
const dlg = () => page.locator('dialog[open]');
const hookRow = (url) => page.locator('#hook-rows tr').filter({ has: page.getByText(url, { exact: true }) });
const keyRow = (name) => page.locator('#key-rows tr', { hasText: name });
const withKey = (key) => ({ Authorization: `Bearer ${key}` });

async function go(link, id) {
  await page.getByRole('link', { name: link, exact: true }).click();
  await page.locator(`#page-${id}[data-loads]`).waitFor();
}

test('webhooks: create with the secret shown once, refused edits at their fields, a test event delivered live, rotate, delete', async () => {
  await go('Webhooks', 'webhooks');
  await page.locator('#hook-rows', { hasText: 'Nothing to show.' }).waitFor();
  assert.deepEqual(await unlabelled(page), []);

  // Create: a URL that is not http(s) is refused at its field.
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  const form = dlg();
  assert.equal(await form.getByLabel('video.completed').isChecked(), true, 'all four by default');
  await form.getByLabel('Receiver URL').fill('ftp://files.example.test/hook');
  await form.getByRole('button', { name: 'Add endpoint' }).click();
  const urlErr = form.locator('.field:has([name="url"]) .field-error');
  await urlErr.waitFor({ state: 'visible' });
  assert.equal(await urlErr.textContent(), 'url must be an http or https URL');
  assert.equal(await form.getByLabel('Receiver URL').getAttribute('aria-invalid'), 'true');
  const url = `${recv.url}/hook`;
  await form.getByLabel('Receiver URL').fill(url);
  await form.getByLabel('video.failed').uncheck();
  await form.getByLabel('image.failed').uncheck();
  await form.getByRole('button', { name: 'Add endpoint' }).click();

  // The secret, once, with its warning and a working copy button.
  const box = page.locator('#hook-secret');
  await box.waitFor();
  const secret = await box.getByLabel('Signing secret').inputValue();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.match(await box.locator('[role="alert"]').textContent(), /only time the secret is shown.*You will not see it again/);
  await toast(/^Webhook #\d+ created\.$/).waitFor();
  await box.getByRole('button', { name: 'Copy' }).click();
  await toast('Copied to the clipboard.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await b.shot(page, 'webhook-secret');
  await dlg().getByRole('button', { name: 'Done' }).click();
  await dlg().waitFor({ state: 'detached' });
  let [w] = (await api('GET', '/api/webhooks')).json;
  assert.deepEqual({ url: w.url, event_types: w.event_types, enabled: w.enabled, secret: w.secret },
    { url, event_types: ['video.completed', 'image.completed'], enabled: true, secret: undefined });
  const row = hookRow(url);
  await row.waitFor();
  assert.match(await row.textContent(), /video\.completed.*image\.completed.*enabled/);
  assert.equal((await page.content()).includes(secret), false, 'the secret left the page with its dialog');
  await page.reload();
  await page.locator('#page-webhooks[data-loads]').waitFor();
  await hookRow(url).waitFor();
  assert.equal((await page.content()).includes(secret), false, 'and is not shown after a reload');

  // Edit: a refused URL, then no event type, each at its field.
  await hookRow(url).getByRole('button', { name: `Edit webhook #${w.id}` }).click();
  const edit = dlg();
  await edit.getByLabel('Receiver URL').fill('not a url');
  await edit.getByRole('button', { name: 'Save' }).click();
  await urlErr.waitFor({ state: 'visible' });
  assert.equal(await edit.locator('.field:has([name="url"]) .field-error').textContent(), 'url must be an http or https URL');
  await b.shot(page, 'webhook-edit-refused');
  await edit.getByLabel('Receiver URL').fill(url);
  await edit.getByLabel('video.completed').uncheck();
  await edit.getByLabel('image.completed').uncheck();
  await edit.getByRole('button', { name: 'Save' }).click();
  const evErr = edit.locator('fieldset.check-group .field-error');
  await evErr.waitFor({ state: 'visible' });
  assert.equal(await evErr.textContent(), 'event_types must be a non-empty array of event types');
  assert.equal(await edit.getByLabel('image.failed').getAttribute('aria-invalid'), 'true');
  assert.equal(await edit.locator('.field:has([name="url"]) .field-error').isVisible(), false);
  await edit.getByLabel('image.failed').check();
  await edit.getByLabel('video.completed').check();
  await edit.getByRole('button', { name: 'Save' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast(`Webhook #${w.id} updated.`).waitFor();
  w = (await api('GET', '/api/webhooks')).json[0];
  assert.deepEqual(w.event_types, ['video.completed', 'image.failed']);

  // A test event: queued, delivered to the receiver, and the table
  // follows it there without a reload.
  await hookRow(url).getByRole('button', { name: `Deliveries webhook #${w.id}` }).click();
  const deliveries = page.locator('#hook-deliveries');
  await deliveries.locator('#hook-d-rows', { hasText: 'No delivery yet.' }).waitFor();
  await deliveries.getByRole('button', { name: 'Send test event' }).click();
  await deliveries.locator('#hook-d-test', { hasText: `Test event queued for webhook #${w.id}.` }).waitFor();
  const done = deliveries.locator('#hook-d-rows tr[data-state="delivered"]');
  await done.waitFor({ timeout: 15000 });
  const cells = await done.locator('td').allTextContents();
  assert.equal(cells[0], 'webhook.test');
  assert.equal(cells[1], '–', 'a test event has no job');
  assert.equal(cells[2], 'delivered');
  assert.equal(cells[3], '1');
  assert.equal(cells[4], '200');
  assert.equal(cells[5], '–');
  assert.equal(cells[6], '–', 'nothing more to do');
  assert.notEqual(cells[8], '–', 'delivered at');
  const hit = recv.got.find((x) => x.path === '/hook');
  assert.ok(hit, 'the receiver got it');
  assert.equal(JSON.parse(hit.body).type, 'webhook.test');
  assert.match(hit.headers['webhook-signature'], /^v1,/);
  await b.shot(page, 'webhook-deliveries');
  await page.keyboard.press('Escape');
  await dlg().waitFor({ state: 'detached' });

  // A receiver that fails: the attempts, its status and error, the next
  // attempt, as they change.
  const bad = await api('POST', '/api/webhooks', { url: `${recv.url}/fail` });
  assert.equal(bad.status, 200, bad.text);
  await page.getByRole('button', { name: 'Refresh' }).click();
  await hookRow(`${recv.url}/fail`).getByRole('button', { name: `Deliveries webhook #${bad.json.id}` }).click();
  await deliveries.getByRole('button', { name: 'Send test event' }).click();
  const failing = deliveries.locator('#hook-d-rows tr[data-state="pending"]', { hasText: 'the receiver answered 500' });
  await failing.waitFor({ timeout: 15000 });
  const f = await failing.locator('td').allTextContents();
  assert.equal(f[2], 'pending');
  assert.equal(f[4], '500');
  assert.notEqual(f[6], '–', 'a next attempt is due');
  assert.equal(f[8], '–');
  await deliveries.locator('#hook-d-rows td:nth-child(4)', { hasText: /^[2-9]$/ }).waitFor({ timeout: 15000 });
  await page.keyboard.press('Escape');
  assert.equal((await api('DELETE', `/api/webhooks/${bad.json.id}`)).status, 200);
  await page.getByRole('button', { name: 'Refresh' }).click();
  await hookRow(`${recv.url}/fail`).waitFor({ state: 'detached' });

  // Disabled: a test event is refused, and the page says why.
  await hookRow(url).getByRole('button', { name: `Disable webhook #${w.id}` }).click();
  await toast(`Webhook #${w.id} disabled.`).waitFor();
  await page.locator(`#hook-rows tr[data-id="${w.id}"][data-enabled="false"]`).waitFor();
  await hookRow(url).getByRole('button', { name: `Send test webhook #${w.id}` }).click();
  await page.locator('.toast-error', { hasText: `Webhook #${w.id}: Webhook is disabled` }).waitFor();
  await hookRow(url).getByRole('button', { name: `Enable webhook #${w.id}` }).click();
  await page.locator(`#hook-rows tr[data-id="${w.id}"][data-enabled="true"]`).waitFor();

  // Rotate: a new secret, shown once; the receiver's next event is signed
  // with it and, for the hour chosen, with the old one too.
  await hookRow(url).getByRole('button', { name: `Rotate secret webhook #${w.id}` }).click();
  await dlg().getByText('Deliveries are signed with it from now on.', { exact: false }).waitFor();
  await dlg().getByLabel('The current secret keeps signing too for').selectOption('3600');
  await dlg().getByRole('button', { name: 'Rotate' }).click();
  await box.waitFor();
  const rotated = await box.getByLabel('Signing secret').inputValue();
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, secret);
  await page.keyboard.press('Escape');
  await dlg().waitFor({ state: 'detached' });
  const before = recv.got.length;
  assert.equal((await api('POST', `/api/webhooks/${w.id}/test`)).status, 200);
  await waitFor(() => recv.got.slice(before).find((x) => x.path === '/hook'), { what: 'the event after the rotation' });
  const next = recv.got.slice(before).find((x) => x.path === '/hook');
  const mac = (s) => crypto.createHmac('sha256', Buffer.from(s.slice(6), 'base64'))
    .update(`${next.headers['webhook-id']}.${next.headers['webhook-timestamp']}.${next.body}`).digest('base64');
  assert.equal(next.headers['webhook-signature'], `v1,${mac(rotated)} v1,${mac(secret)}`);
  await hookRow(url).getByText(/previous secret signs until/).waitFor();
  assert.equal((await page.content()).includes(rotated), false);

  // Delete, after a confirmation.
  await b.shot(page, 'webhooks');
  await hookRow(url).getByRole('button', { name: `Delete webhook #${w.id}` }).click();
  await dlg().getByText(/and all its deliveries/).waitFor();
  await dlg().getByRole('button', { name: 'Delete' }).click();
  await toast(`Webhook #${w.id} deleted.`).waitFor();
  await hookRow(url).waitFor({ state: 'detached' });
  assert.deepEqual((await api('GET', '/api/webhooks')).json, []);
});

test('tokens: the group is shown, set in the edit form (a refused one at its field) and in batch add', async () => {
  const t1 = await g.addToken({ d, fake, H }, {}, { email: 'grouped@example.test' });
  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.locator('#page-tokens[data-loaded]').waitFor();
  await page.getByLabel('Search').fill('grouped@example.test');
  const row = page.locator('#tok-rows tr', { hasText: 'grouped@example.test' });
  await row.waitFor();
  assert.equal(await row.locator('td[data-label="Group"]').textContent(), 'none');
  await row.getByRole('button', { name: 'Edit token' }).click();
  await dlg().getByLabel('Token group').fill('bad group!');
  await dlg().getByRole('button', { name: 'Save' }).click();
  const err = dlg().locator('.field:has([name="group"]) .field-error');
  await err.waitFor({ state: 'visible' });
  assert.equal(await err.textContent(), 'group must be 1..64 characters of A-Z a-z 0-9 . _ -, or "" for none');
  assert.equal(await dlg().getByLabel('Token group').getAttribute('aria-invalid'), 'true');
  await dlg().getByLabel('Token group').fill('team-a');
  await dlg().getByRole('button', { name: 'Save' }).click();
  await dlg().waitFor({ state: 'detached' });
  await row.locator('td[data-label="Group"]', { hasText: 'team-a' }).waitFor();
  const tok = (await api('GET', '/api/tokens')).json.find((x) => x.id === t1.id);
  assert.equal(tok.group, 'team-a');
  // The search finds it by its group.
  await page.getByLabel('Search').fill('team-a');
  await page.locator('#tok-summary', { hasText: /^1 of / }).waitFor();

  // Batch add sets it on every line.
  const acc = await fake.account({ email: 'batch-grouped@example.test' });
  await page.getByRole('button', { name: 'Batch add' }).click();
  await dlg().getByLabel('Tokens, one per line').fill(acc.access_token);
  await dlg().getByLabel('Token group').fill('team-b');
  await dlg().getByRole('button', { name: 'Add them' }).click();
  await dlg().locator('#batch-summary', { hasText: 'Batch completed: 1 added' }).waitFor();
  await page.keyboard.press('Escape');
  assert.equal((await api('GET', '/api/tokens')).json.find((x) => x.email === acc.email).group, 'team-b');
  await page.getByLabel('Search').fill('team-b');
  await page.locator('#tok-rows td[data-label="Group"]', { hasText: 'team-b' }).waitFor();
  await b.shot(page, 'tokens-group');
  await page.getByLabel('Search').fill('');
});

test('API keys: created with limits and shown once, used from here with the counters moving, edited, disabled, usage and CSV, deleted', async () => {
  await go('API keys', 'keys');
  await keyRow('default').waitFor();
  assert.match(await keyRow('default').textContent(), /#1 · set in Settings/);
  assert.deepEqual(await unlabelled(page), []);

  await page.getByRole('button', { name: 'Create key' }).click();
  const form = dlg();
  await form.locator('#key-models input').first().waitFor();
  assert.deepEqual(await form.locator('#key-models input').evaluateAll((xs) => xs.map((x) => x.value)),
    (await api('GET', '/api/models')).json.data.map((m) => m.id), 'a checkbox per model id');
  assert.deepEqual(await unlabelled(page), []);
  // A refused value sits at its field.
  await form.getByLabel('Name').fill('ui client');
  await form.getByLabel('Image quota').fill('-1');
  await form.getByRole('button', { name: 'Create key' }).click();
  const qErr = form.locator('.field:has([name="image_quota"]) .field-error');
  await qErr.waitFor({ state: 'visible' });
  assert.equal(await qErr.textContent(), 'image_quota must be an integer from 0 to 1000000000, or null (unlimited)');
  await form.getByLabel('Requests per minute').fill('5');
  await form.getByLabel('Generation jobs at once').fill('2');
  await form.getByLabel('Image quota').fill('3');
  await form.getByLabel('Quota period').selectOption('day');
  await form.getByLabel('Token group').fill('team-a');
  await form.getByLabel('Expires at').fill(`${new Date().getFullYear() + 1}-06-30T12:00`);
  await form.getByLabel('sora-image', { exact: true }).check();
  await form.getByLabel('sora-video-10s', { exact: true }).check();
  await b.shot(page, 'key-create');
  await form.getByRole('button', { name: 'Create key' }).click();

  // The key, once.
  const box = page.locator('#key-secret');
  await box.waitFor();
  const key = await box.getByLabel('API key').inputValue();
  assert.match(key, /^sk-[0-9a-f]{48}$/);
  assert.match(await box.locator('[role="alert"]').textContent(), /only time the key is shown.*You will not see it again/);
  await box.getByRole('button', { name: 'Copy' }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  await b.shot(page, 'key-secret');
  await dlg().getByRole('button', { name: 'Done' }).click();
  await dlg().waitFor({ state: 'detached' });
  let k = (await api('GET', '/api/keys')).json.data.find((x) => x.name === 'ui client');
  assert.deepEqual({
    rpm: k.rpm, concurrency: k.concurrency, image_quota: k.image_quota, video_quota: k.video_quota,
    quota_period: k.quota_period, token_group: k.token_group, models: k.models, enabled: k.enabled, key: k.key,
  }, {
    rpm: 5, concurrency: 2, image_quota: 3, video_quota: null, quota_period: 'day', token_group: 'team-a',
    models: ['sora-image', 'sora-video-10s'], enabled: true, key: undefined,
  });
  assert.equal(k.expires_at, Math.floor(new Date(`${new Date().getFullYear() + 1}-06-30T12:00`).getTime() / 1000),
    'the browser\'s local time');
  assert.equal(k.key_hint, `sk-${key.slice(3, 7)}...${key.slice(-4)}`);
  const row = keyRow('ui client');
  await row.waitFor();
  assert.match(await row.textContent(), /requests per minute: 5.*jobs at once: 2.*images per day \(UTC\): 3/);
  assert.match(await row.textContent(), /sora-image, sora-video-10s.*token group team-a/);
  assert.equal((await page.content()).includes(key), false, 'the key left the page with its dialog');
  await page.reload();
  await page.locator('#page-keys[data-loads]').waitFor();
  await row.waitFor();
  assert.equal((await page.content()).includes(key), false, 'and is not shown after a reload');

  // Used from here: three model listings and an image, served by the
  // group's token; the page follows the counters by itself.
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${d.base}/v1/models`, { headers: withKey(key) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '5');
  }
  const img = await g.chat(d, { model: 'sora-image', messages: g.user('a key cat') }, { headers: withKey(key) });
  assert.equal(img.status, 200, img.text);
  await row.locator('[data-live="window"]', { hasText: 'this minute: 4 / 5' }).waitFor({ timeout: 15000 });
  await row.locator('[data-live="images"]', { hasText: 'images: 1 / 3' }).waitFor({ timeout: 15000 });
  await row.locator('[data-live="requests"]', { hasText: 'requests: 4' }).waitFor({ timeout: 15000 });
  await row.locator('[data-live="used-images"]', { hasText: 'images: 1' }).waitFor();
  assert.match(await row.locator('[data-live="running"]').textContent(), /running: 0 \/ 2/);
  const task = (await api('GET', '/api/tasks?limit=5')).json.tasks.find((x) => x.prompt === 'a key cat');
  const grouped = (await api('GET', '/api/tokens')).json.find((x) => x.group === 'team-a');
  assert.equal(task.token_id, grouped.id, 'the job ran on the token of the key\'s group');
  await b.shot(page, 'keys');

  // Edit: an emptied limit becomes unlimited (null).
  await row.getByRole('button', { name: /^Edit key / }).click();
  assert.equal(await dlg().getByLabel('Requests per minute').inputValue(), '5');
  assert.equal(await dlg().getByLabel('sora-video-10s', { exact: true }).isChecked(), true);
  await dlg().getByLabel('Requests per minute').fill('');
  await dlg().getByLabel('Video quota').fill('7');
  await dlg().getByRole('button', { name: 'Save' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast(/^Key #\d+ ui client updated\.$/).waitFor();
  k = (await api('GET', `/api/keys/${k.id}`)).json;
  assert.deepEqual([k.rpm, k.video_quota, k.image_quota, k.concurrency], [null, 7, 3, 2]);
  await row.locator('[data-live="videos"]', { hasText: 'videos: 0 / 7' }).waitFor();
  assert.equal(await row.locator('[data-live="window"]').count(), 0, 'no window without an rpm');
  const noRpm = await fetch(`${d.base}/v1/models`, { headers: withKey(key) });
  assert.equal(noRpm.headers.get('x-ratelimit-limit-requests'), null);

  // Disabled: refused at once; enabled again.
  await row.getByRole('button', { name: /^Disable key / }).click();
  await dlg().getByRole('button', { name: 'Disable' }).click();
  await page.locator(`#key-rows tr[data-id="${k.id}"][data-state="disabled"]`).waitFor();
  let r = await fetch(`${d.base}/v1/models`, { headers: withKey(key) });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.message, 'This API key is disabled.');
  await row.getByRole('button', { name: /^Enable key / }).click();
  await page.locator(`#key-rows tr[data-id="${k.id}"][data-state="enabled"]`).waitFor();
  assert.equal((await fetch(`${d.base}/v1/models`, { headers: withKey(key) })).status, 200);

  // Usage by day and model, the same as the API's; a range with none;
  // the CSV.
  await waitFor(async () => (await api('GET', `/api/keys/${k.id}/usage`)).json.total.requests === 6, { what: 'six requests counted' });
  await row.getByRole('button', { name: /^Usage key / }).click();
  const usage = page.locator('#key-usage');
  await usage.locator('#key-u-rows tr[data-model="sora-image"]').waitFor();
  const today = new Date().toISOString().slice(0, 10);
  const want = (await api('GET', `/api/keys/${k.id}/usage`)).json;
  const shown = await usage.locator('#key-u-rows tr').evaluateAll((rows) => rows.map((x) => [...x.children].map((c) => c.textContent)));
  assert.deepEqual(shown, want.data.map((x) => [x.day, x.model || '(no generation)', String(x.requests), String(x.images),
    String(x.videos), String(x.video_seconds), String(x.failures)]));
  assert.deepEqual(shown.map((x) => x.slice(0, 4)), [[today, '(no generation)', '5', '0'], [today, 'sora-image', '1', '1']]);
  assert.deepEqual(await usage.locator('#key-u-total td').allTextContents(), ['6', '1', '0', '0', '0']);
  await b.shot(page, 'key-usage');
  await usage.getByLabel('From (UTC day)').fill('2099-01-01');
  await usage.getByRole('button', { name: 'Show' }).click();
  await usage.locator('#key-u-rows', { hasText: 'No usage in this range.' }).waitFor();
  await usage.getByLabel('From (UTC day)').fill(today);
  await usage.getByLabel('To (UTC day)').fill(today);
  await usage.getByRole('button', { name: 'Show' }).click();
  await usage.locator('#key-u-rows tr[data-model="sora-image"]').waitFor();
  const [dl] = await Promise.all([page.waitForEvent('download'), usage.getByRole('button', { name: 'Download CSV' }).click()]);
  assert.equal(dl.suggestedFilename(), `api-key-${k.id}-usage.csv`);
  const lines = fs.readFileSync(await dl.path(), 'utf8').trim().split('\n');
  assert.deepEqual(lines, ['day,model,requests,images,videos,video_seconds,failures',
    `${today},,5,0,0,0,0`, `${today},sora-image,1,1,0,0,0`]);
  await page.keyboard.press('Escape');
  await dlg().waitFor({ state: 'detached' });

  // Delete (revoke): refused at once, gone from the page.
  await row.getByRole('button', { name: /^Delete key / }).click();
  await dlg().getByText(/Delete \(revoke\) key #\d+ ui client\?/).waitFor();
  await dlg().getByRole('button', { name: 'Delete' }).click();
  await toast(/ui client deleted/).waitFor();
  await row.waitFor({ state: 'detached' });
  r = await fetch(`${d.base}/v1/models`, { headers: withKey(key) });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.message, 'Incorrect API key provided.');
  assert.equal((await api('GET', `/api/keys/${k.id}`)).status, 404);

  // Settings: the API key form says it changes key 1.
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'API key (key 1)' }).waitFor();
  assert.match(await page.locator('#set-apikey').textContent(), /changes named key 1, the first key/);
  await page.locator('#set-apikey-keys').click();
  await page.locator('#page-keys[data-loads]').waitFor();
});

test('the new pages in Chinese and on a phone-sized screen', async () => {
  const phone = await b.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN' });
  const p = await phone.newPage();
  await p.goto(`${d.base}/`);
  await p.getByLabel('用户名').fill('admin');
  await p.getByLabel('密码', { exact: true }).fill(PASSWORD);
  await p.getByRole('button', { name: '登录' }).click();
  await p.locator('.topbar').waitFor();
  assert.equal((await api('POST', '/api/webhooks', { url: `${recv.url}/phone`, event_types: ['video.failed'] })).status, 200);
  for (const [link, id, heading] of [['API Key', 'keys', 'API Key'], ['Webhook', 'webhooks', 'Webhook']]) {
    await p.getByRole('link', { name: link, exact: true }).click();
    await p.locator(`#page-${id}[data-loads]`).waitFor();
    assert.equal(await p.locator('h1').textContent(), heading);
    await p.locator(`#page-${id} tbody tr[data-id]`).first().waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${id}: ${overflow}px wider than the screen`);
    assert.equal(await p.locator(`#page-${id} tbody td`).first().evaluate((td) => getComputedStyle(td).display), 'block', 'rows as cards');
    assert.deepEqual(await unlabelled(p), []);
    await b.shot(p, `phone-${id}-zh`);
  }
  await p.getByRole('button', { name: '添加端点' }).click();
  await p.locator('dialog[open]').getByLabel('接收地址').waitFor();
  assert.ok(await p.evaluate(() => document.querySelector('dialog[open]').scrollWidth <= window.innerWidth));
  await b.shot(p, 'phone-webhook-form-zh');
  await p.keyboard.press('Escape');
  await p.getByRole('link', { name: 'API Key', exact: true }).click();
  await p.getByRole('button', { name: '创建 Key' }).click();
  await p.locator('dialog[open] #key-models input').first().waitFor();
  await b.shot(p, 'phone-key-form-zh');
  await phone.close();
});

test('no request left for another host; no console error or CSP refusal', () => {
  assert.deepEqual(b.offHost, []);
  assert.deepEqual(b.problems, []);
});
