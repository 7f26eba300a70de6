'use strict';
// The admin UI in a real browser (headless chromium) against the real
// daemon and the fake upstream: login and the forced password change,
// the dashboard, every action on tokens, batch add, import and export,
// the job and log views with a job running live, every settings form
// with a refused value, the language switch, a phone-sized screen, an
// XSS probe, an expired session and logout. No request may leave for
// another host; console errors and CSP refusals fail the file.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const { request, waitFor } = require('../integration/lib/daemon');
const g = require('../integration/lib/gen');
const { startUiPool, login, openBrowser, uiLogin, unlabelled } = require('./lib/browser');

const json = (o) => JSON.stringify(o);
const PASSWORD = 'correct horse 1';
const XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
let ctx;
let d;
let fake;
let b;
let page;
let H; // a node-side admin session, once the password changed

before(async () => {
  ctx = await startUiPool();
  ({ d, fake } = ctx);
  b = await openBrowser(d.base);
  ({ page } = b);
});

after(async () => {
  if (b) await b.close();
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
  await fake.close();
});

const api = (method, p, body) => request(d.base, method, p, { headers: H, body: body === undefined ? undefined : json(body), timeout: 30000 });
const tokens = async () => (await api('GET', '/api/tokens?reveal=1')).json;
const byEmail = async (email) => (await tokens()).find((t) => t.email === email);
const toast = (text) => page.locator('.toast', { hasText: text }).last();
const row = (email) => page.locator('#tok-rows tr', { hasText: email });
const dlg = () => page.locator('dialog[open]');

// The token page, its list freshly loaded.
async function goTokens() {
  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.locator('#page-tokens[data-loads]').waitFor();
  const n = await page.locator('#page-tokens').getAttribute('data-loads');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.locator(`#page-tokens:not([data-loads="${n}"])`).waitFor();
}

// Submits form `f` and waits until its answer is in.
async function save(f, name = 'Save') {
  await f.getByRole('button', { name }).click();
  await f.locator('xpath=self::*[not(@aria-busy)]').waitFor();
}

// The browser's token list reloaded, and `email` shown on the page.
async function findRow(email) {
  await page.getByLabel('Search').fill(email);
  await row(email).waitFor();
  return row(email);
}

test('login: a wrong password is refused; the default password must be changed first', async () => {
  await page.goto(`${d.base}/`);
  await page.getByRole('heading', { name: 'sora2api' }).waitFor();
  await b.shot(page, 'login');
  assert.deepEqual(await unlabelled(page), []);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password', { exact: true }).fill('wrong');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('Wrong user name or password.').waitFor();

  await page.getByLabel('Password', { exact: true }).fill('admin');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Change the default password' }).waitFor();
  assert.equal(await page.locator('.topbar').count(), 0, 'nothing else before the change');
  // Refused by the browser (the two differ), then by the server (too
  // short), each next to its field.
  await page.getByLabel('New password', { exact: true }).fill('short');
  await page.getByLabel('New password again').fill('other');
  await page.getByRole('button', { name: 'Change password' }).click();
  const again = page.getByLabel('New password again');
  await page.getByText('The two new passwords differ.').waitFor();
  assert.equal(await again.getAttribute('aria-invalid'), 'true');
  await page.getByLabel('New password again').fill('short');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('The new password needs at least 8 characters').waitFor();
  const pw = page.getByLabel('New password', { exact: true });
  assert.equal(await pw.getAttribute('aria-invalid'), 'true');
  assert.match(await pw.getAttribute('aria-describedby'), /-err/);
  await b.shot(page, 'change-password');

  await pw.fill(PASSWORD);
  await page.getByLabel('New password again').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await toast('Password changed').waitFor();
  // The old password is gone; the daemon no longer says "default".
  const old = await request(d.base, 'POST', '/api/login', { body: json({ username: 'admin', password: 'admin' }) });
  assert.equal(old.status, 401);
  H = await login(d, 'admin', PASSWORD);
  assert.equal((await api('GET', '/api/session')).json.default_password, false);
  assert.equal(await page.evaluate(() => Object.keys(localStorage).some((k) => /session/.test(k))), false,
    'the session is not in localStorage');
  assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
});

test('the dashboard shows the pool, counts, failures and health, and refreshes by itself', async () => {
  await api('POST', '/api/admin/config', { quota_refresh_interval: 0 });
  const t1 = await g.addToken(Object.assign({}, ctx, { H }), {}, { email: 'dash1@example.test' });
  await page.locator('#stat-total .stat-value', { hasText: /^1$/ }).waitFor({ timeout: 15000 });
  const before = Number(await page.locator('#stat-images .stat-value').textContent());
  await g.chat(d, { model: 'sora-image', messages: g.user('a dashboard cat') });
  await g.chat(d, { model: 'sora-image', messages: g.user('#fail a dashboard failure') });
  // No reload: the numbers and the failure arrive by themselves.
  await page.locator('#stat-images .stat-value', { hasText: new RegExp(`^${before + 1}$`) }).waitFor({ timeout: 15000 });
  await page.locator('#dash-failures td', { hasText: 'generation_failed' }).waitFor({ timeout: 15000 });
  assert.equal(await page.locator('#stat-states [data-state="active"]').textContent(), '1');
  await page.locator('#health th', { hasText: 'recent_tasks' }).waitFor();
  assert.match(await page.locator('#dash-updated').textContent(), /^Updated /);
  await b.shot(page, 'dashboard');
  assert.ok(t1.id > 0);

  // The upstream's badge (docs/admin-ui.md, "Dashboard"), live: ok while
  // every call is answered; degraded once an endpoint class fails more
  // than a fifth of its calls; down once half of all calls fail.
  const upState = async () => {
    const up = (await api('GET', '/api/stats')).json.upstream;
    const rows = Object.values(up);
    const calls = rows.reduce((n, v) => n + v.calls, 0);
    const failures = rows.reduce((n, v) => n + v.failures, 0);
    return { calls, failures, me: up.me };
  };
  await page.locator('#upstream-state[data-state="ok"]').waitFor({ timeout: 15000 });
  assert.equal((await upState()).failures, 0);
  await fake.arm({ route: 'GET /backend/me', status: 500, times: 1 });
  // (a failed /me alone does not fail the test: the rest is asked anyway)
  assert.equal((await api('POST', `/api/tokens/${t1.id}/test`)).status, 200);
  const one = await upState();
  assert.equal(one.failures, 1);
  assert.ok(one.me.failures / one.me.calls > 0.2 && one.failures * 2 < one.calls, JSON.stringify(one));
  await page.locator('#upstream-state[data-state="degraded"]').waitFor({ timeout: 15000 });
  assert.match(await page.locator('#upstream-state').textContent(), /degraded/);
  await b.shot(page, 'dashboard-degraded');
  await fake.arm({ route: '/backend/*', status: 500, times: -1 });
  try {
    for (let u = await upState(); u.failures * 2 < u.calls; u = await upState()) {
      await Promise.all([1, 2, 3, 4].map(() => api('POST', `/api/tokens/${t1.id}/test`)));
    }
    await page.locator('#upstream-state[data-state="down"]').waitFor({ timeout: 15000 });
    assert.match(await page.locator('#upstream-state').textContent(), /down/);
    await b.shot(page, 'dashboard-down');
  } finally {
    await g.disarm(fake);
  }
  assert.equal((await byEmail('dash1@example.test')).state, 'active', 'a 500 is not the token\'s fault');
});

test('add a token through the form, with the ST and RT converters', async () => {
  await goTokens();
  assert.deepEqual(await unlabelled(page), []);
  const acc = await fake.account({ email: 'form-add@example.test' });
  await page.getByRole('button', { name: 'Add token' }).click();
  const form = dlg();
  // A broken token is refused next to its field.
  await form.getByLabel('Access token (AT)').fill('not a jwt');
  await form.getByRole('button', { name: 'Add token' }).click();
  await form.locator('.field-error', { hasText: /access token|JWT/ }).waitFor();
  assert.equal(await form.getByLabel('Access token (AT)').getAttribute('aria-invalid'), 'true');
  await form.getByLabel('Access token (AT)').fill(acc.access_token);
  await form.getByLabel('Remark').fill('added in the form');
  await form.getByLabel('Video jobs at once').fill('2');
  await form.getByLabel('Images enabled').uncheck();
  await b.shot(page, 'token-add');
  await form.getByRole('button', { name: 'Add token' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast(/Token added/).waitFor();
  await (await findRow(acc.email)).waitFor();
  let t = await byEmail(acc.email);
  assert.equal(t.remark, 'added in the form');
  assert.equal(t.video_concurrency, 2);
  assert.equal(t.image_enabled, false);
  assert.match(await row(acc.email).textContent(), /added in the form/);

  // The same again: 409, shown in the form.
  await page.getByRole('button', { name: 'Add token' }).click();
  await dlg().getByLabel('Access token (AT)').fill(acc.access_token);
  await dlg().getByRole('button', { name: 'Add token' }).click();
  await dlg().getByText(/already exists/).waitFor();
  await page.keyboard.press('Escape');
  await dlg().waitFor({ state: 'detached' });

  // ST -> AT fills the access token; RT -> AT also the rotated RT.
  const sAcc = await fake.account({ email: 'form-st@example.test' });
  await page.getByRole('button', { name: 'Add token' }).click();
  await dlg().getByLabel('Session token (ST)').fill(sAcc.session_token);
  await dlg().getByRole('button', { name: 'ST → AT' }).click();
  await dlg().getByText(/^Converted: form-st@example\.test/).waitFor();
  assert.match(await dlg().getByLabel('Access token (AT)').inputValue(), /^eyJ/);
  await dlg().getByRole('button', { name: 'Add token' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast(/Token added/).waitFor();
  t = await byEmail(sAcc.email);
  assert.equal(t.st, sAcc.session_token);

  const rAcc = await fake.account({ email: 'form-rt@example.test' });
  await page.getByRole('button', { name: 'Add token' }).click();
  await dlg().getByLabel('Refresh token (RT)').fill(rAcc.refresh_token);
  await dlg().getByRole('button', { name: 'RT → AT' }).click();
  await dlg().getByText(/refresh token was rotated/).waitFor();
  const rotated = await dlg().getByLabel('Refresh token (RT)').inputValue();
  assert.notEqual(rotated, rAcc.refresh_token);
  await dlg().getByRole('button', { name: 'Add token' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast(/Token added/).waitFor();
  assert.equal((await byEmail(rAcc.email)).rt, rotated);
  // A refresh token Sora does not know: the error sits at the RT field.
  await page.getByRole('button', { name: 'Add token' }).click();
  await dlg().getByLabel('Refresh token (RT)').fill('rt-unknown-to-sora');
  await dlg().getByRole('button', { name: 'RT → AT' }).click();
  await dlg().locator('.field-error', { hasText: /^Failed to convert RT to AT/ }).waitFor();
  await page.keyboard.press('Escape');
});

test('every action on one token: test, edit, disable, enable, Sora 2 activation, delete', async () => {
  const acc = await fake.account({ email: 'actions@example.test', sora2_activated: false });
  const add = await api('POST', '/api/tokens', { token: acc.access_token, remark: XSS });
  assert.equal(add.status, 200, add.text);
  await goTokens();
  let r = await findRow(acc.email);
  // The remark is text, markup and all.
  assert.equal(await r.locator('.remark').textContent(), XSS);
  assert.equal(await page.locator('#tok-rows img').count(), 0);
  assert.match(await r.textContent(), /not supported/);

  await r.getByRole('button', { name: 'Test token' }).click();
  await toast('the token is valid').waitFor();

  await r.getByRole('button', { name: 'Edit token' }).click();
  await dlg().getByLabel('Remark').fill('edited remark');
  await dlg().getByLabel('Proxy URL').fill('gopher://nowhere');
  await dlg().getByRole('button', { name: 'Save' }).click();
  await dlg().locator('.field-error', { hasText: 'proxy_url must be an http, https, socks5 or socks5h URL' }).waitFor();
  await dlg().getByLabel('Proxy URL').fill('socks5://127.0.0.1:1080');
  await dlg().getByRole('button', { name: 'Save' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast(/updated/).waitFor();
  let t = await byEmail(acc.email);
  assert.equal(t.remark, 'edited remark');
  assert.equal(t.proxy_url, 'socks5://127.0.0.1:1080');
  r = await findRow('edited remark');

  await r.getByRole('button', { name: 'Disable token' }).click();
  await toast(/disabled\.$/).waitFor();
  await page.locator('#tok-rows tr[data-state="disabled"]', { hasText: acc.email }).waitFor();
  assert.equal((await byEmail(acc.email)).state, 'disabled');
  await row(acc.email).getByRole('button', { name: 'Enable token' }).click();
  await page.locator('#tok-rows tr[data-state="active"]', { hasText: acc.email }).waitFor();

  await api('PUT', `/api/tokens/${t.id}`, { proxy_url: '' });
  await row(acc.email).getByRole('button', { name: 'Sora 2 token' }).click();
  await dlg().getByLabel('Invite code').fill('FAKEINVITE');
  await dlg().getByRole('button', { name: 'Activate' }).click();
  await dlg().waitFor({ state: 'detached' });
  await toast('Sora 2 activated').waitFor();
  await row(acc.email).getByText('supported', { exact: true }).waitFor();
  t = await byEmail(acc.email);
  assert.equal(t.sora2_supported, true);

  // A token Sora rejects: the test says why and the state follows.
  await fake.updateAccount({ access_token: acc.access_token, revoked: true });
  await row(acc.email).getByRole('button', { name: 'Test token' }).click();
  await page.locator('.toast-error', { hasText: acc.email }).waitFor();
  await page.locator('#tok-rows tr[data-state="invalid"]', { hasText: acc.email }).waitFor();
  await b.shot(page, 'tokens');

  await row(acc.email).getByRole('button', { name: 'Delete token' }).click();
  await dlg().getByRole('button', { name: 'Delete' }).click();
  await toast(/deleted\.$/).waitFor();
  await row(acc.email).waitFor({ state: 'detached' });
  assert.equal(await byEmail(acc.email), undefined);
});

test('batch add from a pasted list answers per line; batch actions on the selection; delete all invalid', async () => {
  await goTokens();
  const accs = await fake.account({ count: 3, email: 'paste{n}@example.test' });
  await page.getByRole('button', { name: 'Batch add' }).click();
  const lines = [accs[0].access_token, 'garbage', '', accs[1].access_token, accs[2].access_token, accs[0].access_token];
  await dlg().getByLabel('Tokens, one per line').fill(lines.join('\n'));
  await dlg().getByLabel('Remark').fill('pasted batch');
  await dlg().getByRole('button', { name: 'Add them' }).click();
  await dlg().locator('#batch-summary', { hasText: 'Batch completed: 3 added, 1 duplicates, 1 failed' }).waitFor();
  const results = await dlg().locator('#batch-table tbody tr').evaluateAll((rows) => rows.map((r) => [
    r.children[0].textContent, r.dataset.outcome, r.children[2].textContent]));
  assert.deepEqual(results, [
    ['1', 'added', accs[0].email], ['2', 'failed', '–'], ['4', 'added', accs[1].email],
    ['5', 'added', accs[2].email], ['6', 'duplicate', '–'],
  ], 'line numbers of the pasted text, the blank line skipped');
  await b.shot(page, 'batch-add');
  await page.keyboard.press('Escape');
  for (const a of accs) assert.equal((await byEmail(a.email)).remark, 'pasted batch');

  // Every batch action is one request to its batch route, never one a row.
  const calls = [];
  const onRequest = (req) => {
    const p = new URL(req.url()).pathname;
    if (req.method() === 'POST' && /^\/api\/tokens\/(batch\/\w+|\d+\/\w+)$/.test(p)) calls.push(p);
    if (req.method() === 'DELETE' && /^\/api\/tokens\/\d+$/.test(p)) calls.push(`DELETE ${p}`);
  };
  page.on('request', onRequest);
  // Select the three through the page checkbox of a search.
  await page.getByLabel('Search').fill('pasted batch');
  await page.locator('#tok-summary', { hasText: /^3 of / }).waitFor();
  await page.getByLabel('Select every token on this page').check();
  await page.locator('#tok-selcount', { hasText: '3 selected' }).waitFor();
  await page.getByRole('button', { name: 'Disable', exact: true }).click();
  await dlg().getByRole('button', { name: 'Disable' }).click();
  await dlg().getByText('Done: 3 succeeded, 0 failed.').waitFor();
  await page.keyboard.press('Escape');
  for (const a of accs) assert.equal((await byEmail(a.email)).state, 'disabled');
  await page.getByRole('button', { name: 'Enable', exact: true }).click();
  await dlg().getByText('Done: 3 succeeded, 0 failed.').waitFor();
  await page.keyboard.press('Escape');
  for (const a of accs) assert.equal((await byEmail(a.email)).state, 'active');
  await fake.updateAccount({ access_token: accs[2].access_token, revoked: true });
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await dlg().getByText('Done: 2 succeeded, 1 failed.').waitFor();
  await dlg().getByText(new RegExp(`${accs[2].email.replace('.', '\\.')}: `)).waitFor();
  await page.keyboard.press('Escape');
  assert.equal((await byEmail(accs[2].email)).state, 'invalid');

  // Delete every invalid token: only that one goes.
  await page.getByLabel('Search').fill('');
  const invalid = (await tokens()).filter((x) => x.state === 'invalid').length;
  await page.getByRole('button', { name: `Delete invalid (${invalid})` }).click();
  await dlg().getByRole('button', { name: 'Delete' }).click();
  await dlg().getByText(`Done: ${invalid} succeeded, 0 failed.`).waitFor();
  await page.keyboard.press('Escape');
  assert.equal((await tokens()).filter((x) => x.state === 'invalid').length, 0);
  assert.ok(await byEmail(accs[0].email));

  // The rest of the selection, deleted; one of them went meanwhile (by
  // the API, behind the page's back): that row's failure is listed.
  await page.getByLabel('Search').fill('pasted batch');
  await page.locator('#tok-summary', { hasText: /^2 of / }).waitFor();
  await page.getByLabel('Select every token on this page').check();
  assert.equal((await api('DELETE', `/api/tokens/${(await byEmail(accs[1].email)).id}`)).status, 200);
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await dlg().getByRole('button', { name: 'Delete' }).click();
  await dlg().getByText('Done: 1 succeeded, 1 failed.').waitFor();
  await dlg().getByText(`${accs[1].email}: Token not found`).waitFor();
  await b.shot(page, 'batch-delete-failure');
  await page.keyboard.press('Escape');
  assert.equal(await byEmail(accs[0].email), undefined);
  assert.equal(await byEmail(accs[1].email), undefined);
  page.off('request', onRequest);
  assert.deepEqual(calls, ['/api/tokens/batch/disable', '/api/tokens/batch/enable', '/api/tokens/batch/test',
    '/api/tokens/batch/delete', '/api/tokens/batch/delete']);
});

test('export downloads the pool; import adds from a file', async () => {
  await goTokens();
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export' }).click()]);
  assert.match(dl.suggestedFilename(), /^tokens_\d{4}-\d{2}-\d{2}\.json$/);
  const exported = JSON.parse(fs.readFileSync(await dl.path(), 'utf8'));
  const pool = await tokens();
  assert.equal(exported.length, pool.length);
  assert.deepEqual(new Set(exported.map((x) => x.email)), new Set(pool.map((x) => x.email)));
  assert.ok(exported.every((x) => /^eyJ/.test(x.access_token)), 'the export carries the secrets');

  const acc = await fake.account({ email: 'imported@example.test' });
  const file = `${d.dir}/import.json`;
  fs.writeFileSync(file, json([{ email: acc.email, access_token: acc.access_token, is_active: false }]));
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await dlg().getByLabel('JSON file (an exported list)').setInputFiles(file);
  await dlg().getByRole('button', { name: 'Import' }).click();
  await dlg().getByText('Import completed: 1 added, 0 updated, 0 failed').waitFor();
  await page.keyboard.press('Escape');
  assert.equal((await byEmail(acc.email)).state, 'disabled');
  // Not a list: refused before anything is sent.
  fs.writeFileSync(file, '{"tokens": 1}');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await dlg().getByLabel('JSON file (an exported list)').setInputFiles(file);
  await dlg().getByRole('button', { name: 'Import' }).click();
  await dlg().getByText('The file must hold a non-empty JSON array of tokens.').waitFor();
  await page.keyboard.press('Escape');
});

// A streamed job that stalls at Sora until the client leaves.
function stalledJob(prompt) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${d.base}/v1/chat/completions`, { method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer han1234' } }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
        if (text.includes('Video generation progress')) resolve({ leave: () => req.destroy() });
      });
      res.on('end', () => reject(new Error(`the stream ended: ${text}`)));
    });
    req.on('error', () => {});
    req.end(json({ model: 'sora-video-10s', stream: true, messages: g.user(prompt) }));
  });
}

test('jobs and logs: a running job live, details with stages and media from the cache, filters, export', async () => {
  assert.equal((await api('POST', '/api/cache/enabled', { enabled: true })).status, 200);
  const img = await g.chat(d, { model: 'sora-image', messages: g.user(`${XSS} a cached cat`) });
  assert.equal(img.status, 200, img.text);
  const vid = await g.chat(d, { model: 'sora-video-10s', messages: g.user('a cached video') }, { timeout: 60000 });
  assert.equal(vid.status, 200, vid.text);

  await page.getByRole('link', { name: 'Jobs' }).click();
  await page.locator('#jobs-rows tr[data-status="succeeded"]').first().waitFor();
  assert.deepEqual(await unlabelled(page), []);
  const stalled = await stalledJob('#stall a job to watch');
  // It shows up running without a reload.
  const live = page.locator('#jobs-rows tr[data-status="running"]');
  await live.waitFor({ timeout: 15000 });
  assert.match(await live.textContent(), /(10|30|70)%/);
  await b.shot(page, 'jobs-running');
  await live.getByRole('button', { name: /^Details/ }).click();
  const detail = page.locator('#job-detail');
  await detail.waitFor();
  assert.equal(await detail.locator('#job-prompt').textContent(), '#stall a job to watch');
  // Its recorded stages (GET /api/tasks?job_id=), the percentages one
  // entry, current while it runs.
  await detail.locator('#job-stages[data-recorded="yes"]').waitFor();
  assert.equal(await detail.locator('[data-stage="generation.started"]').getAttribute('class'), 'stage-done');
  assert.equal(await detail.locator('[data-stage="generation.processing"]').getAttribute('class'), 'stage-current');
  assert.equal(await detail.locator('[data-stage="generation.processing"]').count(), 1);
  assert.match(await detail.locator('[data-stage="generation.processing"]').textContent(), /Generation: processing.*\d+%/);
  assert.match(await detail.textContent(), /task_\w+/, 'the upstream task id');
  stalled.leave();
  // The dialog follows the row to its end.
  await detail.locator('[data-stage="cancelled"]').waitFor({ timeout: 15000 });
  await page.keyboard.press('Escape');
  await page.locator('#jobs-rows tr[data-status="cancelled"]').first().waitFor({ timeout: 15000 });

  // The image, from the daemon's cache, shown; its prompt stays text.
  await page.locator('#jobs-rows tr', { hasText: 'sora-image' }).first().getByRole('button', { name: /^Details/ }).click();
  await detail.waitFor();
  assert.equal(await detail.locator('#job-prompt').textContent(), `${XSS} a cached cat`);
  // Every stage the job reported, then its end.
  const catRow = (await api('GET', '/api/tasks?limit=100')).json.tasks.find((r) => r.prompt === `${XSS} a cached cat`);
  const catStages = (await api('GET', `/api/tasks?job_id=${catRow.job_id}`)).json.tasks[0].stages;
  assert.deepEqual(catStages.map((e) => `${e.stage}/${e.status}`),
    ['generation/started', 'generation/processing', 'generation/completed', 'cache/started', 'cache/completed']);
  await detail.locator('#job-stages[data-recorded="yes"]').waitFor();
  assert.deepEqual(await detail.locator('#job-stages li').evaluateAll((l) => l.map((e) => e.dataset.stage)),
    [...catStages.map((e) => `${e.stage}.${e.status}`), 'succeeded']);
  const picture = detail.locator('img.result-media');
  await picture.waitFor();
  assert.match(await picture.getAttribute('src'), new RegExp(`^${d.base}/tmp/`));
  await page.waitForFunction(() => document.querySelector('#job-detail img.result-media').naturalWidth > 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'no script ran');
  await b.shot(page, 'job-image');
  await page.keyboard.press('Escape');
  // The video plays from the cache.
  await page.locator('#jobs-rows tr', { hasText: 'sora-video-10s' }).filter({ hasText: 'succeeded' }).first()
    .getByRole('button', { name: /^Details/ }).click();
  const video = detail.locator('video.result-media');
  await video.waitFor();
  assert.match(await video.getAttribute('src'), new RegExp(`^${d.base}/tmp/.+\\.mp4$`));
  await page.waitForFunction(() => {
    const v = document.querySelector('#job-detail video');
    return v && (v.readyState >= 1 || v.error);
  });
  assert.deepEqual(await page.evaluate(() => {
    const v = document.querySelector('#job-detail video');
    return { error: v.error && v.error.code, metadata: v.readyState >= 1, duration: v.duration > 0 };
  }), { error: null, metadata: true, duration: true });
  await b.shot(page, 'job-video');
  await page.keyboard.press('Escape');

  // Filters go to the server.
  await page.getByLabel('Status', { exact: true }).selectOption('cancelled');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('#jobs-rows tr')].every((r) => r.dataset.status === 'cancelled'));
  await page.getByLabel('Status', { exact: true }).selectOption('');
  await page.getByLabel('Model').fill('sora-video-10s');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#jobs-rows tr')];
    return rows.length > 0 && rows.every((r) => r.textContent.includes('sora-video-10s'));
  });
  await page.getByLabel('From').fill('2099-01-01T00:00');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('#jobs-rows td', { hasText: 'Nothing to show.' }).waitFor();
  await page.getByRole('button', { name: 'Reset' }).click();
  await page.locator('#jobs-rows tr[data-status="succeeded"]').first().waitFor();

  // Export what is shown.
  const shown = Number(await page.locator('#page-jobs').getAttribute('data-rows'));
  const [csvDl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  const csvText = fs.readFileSync(await csvDl.path(), 'utf8');
  const csvLines = csvText.trim().split('\r\n');
  assert.equal(csvLines[0].split(',')[1], 'job_id');
  assert.ok(csvLines.length - 1 >= shown, 'a line per job (prompts may hold line breaks)');
  assert.ok(csvText.includes('"\'<img src=x onerror=""window.__xss=1"">') || csvText.includes('<img src=x'), 'the prompt, quoted');
  const [jsonDl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON' }).click()]);
  const rows = JSON.parse(fs.readFileSync(await jsonDl.path(), 'utf8'));
  assert.equal(rows.length, shown);
  assert.ok(rows.some((x) => x.status === 'cancelled'));

  // The request logs, filtered to failures.
  await page.getByRole('link', { name: 'Request logs' }).click();
  await page.locator('#logs-rows tr').first().waitFor();
  await page.getByLabel('Status', { exact: true }).selectOption('error');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#logs-rows tr')];
    return rows.length > 0 && rows.every((r) => Number(r.dataset.status) >= 400);
  });
  await page.locator('#logs-rows tr').first().getByRole('button', { name: /^Details/ }).click();
  await dlg().getByText('generate_').first().waitFor();
  await b.shot(page, 'logs');
  await page.keyboard.press('Escape');
  assert.deepEqual(await unlabelled(page), []);
});

test('every settings form saves, and shows a refused value next to its field', async () => {
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.locator('#set-general input[name="error_ban_threshold"]').waitFor();
  await page.waitForFunction(() => document.querySelector('#set-general input[name="error_ban_threshold"]').value !== '');
  assert.deepEqual(await unlabelled(page), []);
  // [form, field name, refused value, message, good value, check]
  const cases = [
    ['general', 'error_ban_threshold', '5000', 'error_ban_threshold must be 0..1000', '5',
      async () => assert.equal((await api('GET', '/api/admin/config')).json.error_ban_threshold, 5)],
    ['general', 'queue_timeout', '601', 'queue_timeout must be 0..600 seconds', '30',
      async () => assert.equal((await api('GET', '/api/admin/config')).json.queue_timeout, 30)],
    ['upkeep', 'at_refresh_window', '10', 'at_refresh_window must be 300..2592000 seconds', '7200',
      async () => assert.equal((await api('GET', '/api/admin/config')).json.at_refresh_window, 7200)],
    ['cache', 'timeout', '10', 'Cache timeout must be between 60 seconds and 24 hours (86400 seconds)', '900',
      async () => assert.equal((await api('GET', '/api/cache/config')).json.config.timeout, 900)],
    ['cache', 'base_url', 'ftp://files', /^Base URL must start with http/, `${d.base}/`,
      async () => assert.equal((await api('GET', '/api/cache/config')).json.config.base_url, d.base)],
    ['proxy', 'proxy_url', 'gopher://x', 'proxy_url must be an http, https, socks5 or socks5h URL', 'http://127.0.0.1:9',
      async () => assert.equal((await api('GET', '/api/proxy/config')).json.proxy_url, 'http://127.0.0.1:9')],
    ['watermark', 'third_party_url', 'https://cdn.example/no-id.mp4', 'third_party_url must be an http(s) URL containing {post_id}',
      'https://cdn.example/{post_id}.mp4',
      async () => assert.equal((await api('GET', '/api/watermark-free/config')).json.third_party_url, 'https://cdn.example/{post_id}.mp4')],
    ['watermark', 'custom_parse_url', 'mailto:x', 'custom_parse_url must be an http(s) URL', 'http://127.0.0.1:9/parse',
      async () => assert.equal((await api('GET', '/api/watermark-free/config')).json.custom_parse_url, 'http://127.0.0.1:9/parse')],
    ['timeouts', 'video_timeout', '10', 'video_timeout must be 60..7200 seconds', '900',
      async () => assert.equal((await api('GET', '/api/generation/timeout')).json.config.video_timeout, 900)],
    ['timeouts', 'image_timeout', '4000', 'image_timeout must be 60..3600 seconds', '200',
      async () => assert.equal((await api('GET', '/api/generation/timeout')).json.config.image_timeout, 200)],
  ];
  for (const [form, name, bad, message, good, check] of cases) {
    const f = page.locator(`#set-${form}`);
    const input = f.locator(`[name="${name}"]`);
    await input.fill(bad);
    await save(f);
    const err = f.locator(`.field:has([name="${name}"]) .field-error`);
    await err.waitFor({ state: 'visible' });
    if (message instanceof RegExp) assert.match(await err.textContent(), message);
    else assert.equal(await err.textContent(), message, `${form}.${name}`);
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    if (form === 'cache' && name === 'timeout') await b.shot(page, 'settings-refused');
    await input.fill(good);
    await save(f);
    assert.equal(await err.isVisible(), false, `${form}.${name}: ${await err.textContent()}`);
    await check();
  }
  // Selects and switches.
  await page.locator('#set-general').getByLabel('Token selection').selectOption('round_robin');
  await page.locator('#set-general').getByLabel('Log level').selectOption('debug');
  await save(page.locator('#set-general'));
  await waitFor(async () => {
    const c = (await api('GET', '/api/admin/config')).json;
    return c.selection_policy === 'round_robin' && c.debug_enabled === true;
  }, { what: 'policy and log level saved' });
  await page.locator('#set-general').getByLabel('Log level').selectOption('');
  await save(page.locator('#set-general'));
  await waitFor(async () => (await api('GET', '/api/admin/config')).json.log_level === '', { what: 'log level back' });
  await page.locator('#set-upkeep').getByLabel('AT auto-refresh').uncheck();
  await save(page.locator('#set-upkeep'));
  await waitFor(async () => (await api('GET', '/api/token-refresh/config')).json.config.at_auto_refresh_enabled === false,
    { what: 'auto-refresh off' });
  await page.locator('#set-watermark').getByLabel('Method').selectOption('custom');
  await page.locator('#set-watermark').getByLabel('Custom parse server token').fill('parse-secret');
  await save(page.locator('#set-watermark'));
  await waitFor(async () => {
    const w = (await api('GET', '/api/watermark-free/config')).json;
    return w.parse_method === 'custom' && w.custom_parse_token === 'parse-secret';
  }, { what: 'watermark method saved' });
  await page.locator('#set-cache').getByText(`Links now start with: ${d.base}`).waitFor();

  // The proxy test reports what happened through the given URL.
  await page.locator('#set-proxy').getByRole('button', { name: 'Test the proxy' }).click();
  await page.locator('#set-proxy-result', { hasText: /^(No answer: |Sora answered HTTP \d+)/ }).waitFor({ timeout: 20000 });
  await page.locator('#set-proxy').getByLabel('Proxy URL').fill('');
  await save(page.locator('#set-proxy'));
  await waitFor(async () => (await api('GET', '/api/proxy/config')).json.proxy_url === '', { what: 'proxy cleared' });

  // The API key: refused, mismatched, then replaced.
  const key = page.locator('#set-apikey');
  await key.getByLabel('New API key', { exact: true }).fill('short');
  await key.getByLabel('New API key again').fill('short');
  await save(key);
  await key.locator('.field-error', { hasText: /^new_api_key must be 8\.\.256/ }).waitFor();
  await key.getByLabel('New API key', { exact: true }).fill('the-new-api-key');
  await key.getByLabel('New API key again').fill('the-new-api-kez');
  await save(key);
  await key.getByText('The two keys differ.').waitFor();
  await key.getByLabel('New API key again').fill('the-new-api-key');
  await save(key);
  await toast('API key replaced.').waitFor();
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer the-new-api-key' } })).status, 200);
  assert.equal((await request(d.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer han1234' } })).status, 401);
  await b.shot(page, 'settings');

  // The password: a wrong current one is refused at its field; then
  // changed, and this page stays logged in.
  const acct = page.locator('#set-account');
  await acct.getByLabel('Current password').fill('not it');
  await acct.getByLabel('New password', { exact: true }).fill('another pw 2');
  await acct.getByLabel('New password again').fill('another pw 2');
  await save(acct, 'Change password');
  await acct.locator('.field-error', { hasText: 'Old password is incorrect' }).waitFor();
  assert.equal(await acct.getByLabel('Current password').getAttribute('aria-invalid'), 'true');
  await acct.getByLabel('Current password').fill(PASSWORD);
  await save(acct, 'Change password');
  await toast('Password changed; every other session has ended.').waitFor();
  assert.equal((await request(d.base, 'GET', '/api/session', { headers: H })).status, 401, 'the other session ended');
  H = await login(d, 'admin', 'another pw 2');
  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.locator('#page-tokens[data-loaded]').waitFor();
  assert.equal(await page.locator('#alerts .toast').count(), 0);
});

test('the language follows the browser and can be switched; the choice stays', async () => {
  await page.getByLabel('Language').selectOption('zh-CN');
  await page.getByRole('link', { name: 'Token 管理' }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  assert.equal(await page.locator('h1').textContent(), 'Token 管理');
  await page.reload();
  await page.getByRole('link', { name: '概览' }).waitFor();
  await page.getByRole('link', { name: '系统配置' }).click();
  await page.getByRole('heading', { name: '媒体缓存' }).waitFor();
  await b.shot(page, 'settings-zh');
  await page.getByLabel('语言').selectOption('en');
  await page.getByRole('link', { name: 'Dashboard' }).waitFor();
  // A Chinese browser gets Chinese from the first page on.
  const zh = await b.newContext({ locale: 'zh-CN' });
  const p2 = await zh.newPage();
  await p2.goto(`${d.base}/`);
  await p2.getByRole('heading', { name: 'sora2api' }).waitFor();
  assert.equal(await p2.getByRole('button', { name: '登录' }).count(), 1);
  assert.equal(await p2.evaluate(() => document.documentElement.lang), 'zh-CN');
  await b.shot(p2, 'login-zh');
  await zh.close();
});

test('a phone-sized screen: no sideways scrolling, rows as cards, every page reachable', async () => {
  const phone = await b.newContext({ viewport: { width: 390, height: 844 } });
  const p = await phone.newPage();
  await uiLogin(p, d.base, 'another pw 2');
  for (const [link, id, name] of [['Tokens', 'tokens', 'phone-tokens'], ['Jobs', 'jobs', 'phone-jobs'],
    ['Request logs', 'logs', 'phone-logs'], ['Settings', 'settings', 'phone-settings'],
    ['Dashboard', 'dashboard', 'phone-dashboard']]) {
    await p.getByRole('link', { name: link }).click();
    await p.locator(`#page-${id}`).waitFor();
    if (id === 'tokens') await p.locator('#page-tokens[data-loaded]').waitFor();
    if (id === 'jobs' || id === 'logs') await p.locator(`#page-${id}[data-rows]`).waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${id}: ${overflow}px wider than the screen`);
    await b.shot(p, name);
  }
  await p.getByRole('link', { name: 'Tokens' }).click();
  await p.locator('#tok-rows tr').first().waitFor();
  assert.equal(await p.locator('#tok-rows td').nth(1).evaluate((td) => getComputedStyle(td).display), 'block');
  await phone.close();
});

test('keyboard: the pages and dialogs work without a mouse', async () => {
  await page.getByRole('link', { name: 'Tokens' }).focus();
  await page.keyboard.press('Enter');
  await page.locator('#page-tokens[data-loaded]').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the new page');
  await page.getByRole('button', { name: 'Add token' }).focus();
  await page.keyboard.press('Enter');
  await dlg().waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.name), 'token', 'focus starts in the dialog');
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(() => document.querySelector('dialog[open]').contains(document.activeElement)));
  await page.keyboard.press('Escape');
  await dlg().waitFor({ state: 'detached' });
});

test('an expired session returns to the login page with a message; logout', async () => {
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.locator('#stat-total').waitFor();
  // The session ends behind the page's back.
  const tok = await page.evaluate(() => sessionStorage.getItem('sora2api.session'));
  assert.ok(tok);
  assert.equal((await request(d.base, 'POST', '/api/logout', { headers: { Authorization: `Bearer ${tok}` } })).status, 200);
  await page.getByText('Your session has expired. Please log in again.').waitFor({ timeout: 15000 });
  assert.equal(await page.locator('.topbar').count(), 0);
  await b.shot(page, 'session-expired');
  await page.getByLabel('Password', { exact: true }).fill('another pw 2');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByText('You have logged out.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('sora2api.session')), null);
  const gone = await page.evaluate(() => sessionStorage.length);
  assert.equal(gone, 0);
});

test('no request left for another host; no console error or CSP refusal', () => {
  assert.deepEqual(b.offHost, []);
  assert.deepEqual(b.problems, []);
});
