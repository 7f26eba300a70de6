'use strict';
// The admin UI's Characters page in a real browser (headless chromium)
// against the real daemon and the fake upstream: the table with its
// filters (token, state, search) and the token page's link to it; the
// detail dialog's edit (a value the server refuses shown at its field,
// an upstream failure shown on the form with the row unchanged, a good
// edit that reaches the fake); delete after a confirmation; an XSS probe
// through a display name. Rows are made as in
// tests/integration/characters-admin.test.js: characters created on the
// fake through its own endpoints, rows written through /__test/ctl. No
// request may leave for another host; console errors and CSP refusals
// fail the file.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { request } = require('../integration/lib/daemon');
const g = require('../integration/lib/gen');
const { startUiPool, login, openBrowser, uiLogin, unlabelled } = require('./lib/browser');

const json = (o) => JSON.stringify(o);
const PASSWORD = 'characters page 1';
const XSS = '<img src=x onerror="window.__xss=1">Cat';
let ctx;
let d;
let fake;
let b;
let page;
let A;
let B;
let mp4;
let webp;

const ctl = async (msg) => (await request(d.base, 'POST', '/__test/ctl', { body: json(msg) })).json;
const fakeState = () => g.fakeCall(fake, 'GET', '/__fake/state');

async function backend(method, p, at, { body, form } = {}) {
  const r = await fetch(`${fake.url}/backend${p}`, {
    method,
    headers: Object.assign({ authorization: `Bearer ${at}` }, body ? { 'content-type': 'application/json' } : {}),
    body: body ? json(body) : form,
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A finalized character of token `tok` on the fake, and its row here.
async function makeCharacter(tok, username, display) {
  const up = new FormData();
  up.append('file', new Blob([mp4], { type: 'video/mp4' }), 'video.mp4');
  up.append('timestamps', '0,3');
  const cameo = (await backend('POST', '/characters/upload', tok.at, { form: up })).id;
  let st;
  do {
    st = await backend('GET', `/project_y/cameos/in_progress/${cameo}`, tok.at);
  } while (st.status_message !== 'Completed');
  const av = new FormData();
  av.append('file', new Blob([webp], { type: 'image/webp' }), 'profile.webp');
  av.append('use_case', 'profile');
  const ptr = (await backend('POST', '/project_y/file/upload', tok.at, { form: av })).asset_pointer;
  const fin = await backend('POST', '/characters/finalize', tok.at, { body: {
    cameo_id: cameo, username, display_name: display, profile_asset_pointer: ptr,
    instruction_set: null, safety_instruction_set: null,
  } });
  const r = await ctl({ op: 'character_write', public_id: `char_${crypto.randomBytes(12).toString('hex')}`, fields: {
    token_id: tok.id, cameo_id: cameo, character_id: fin.character.character_id, username, display_name: display,
    profile_url: st.profile_asset_url, state: 'ready', visibility: 'private',
  } });
  assert.equal(r.ok, true, json(r));
  return r.row;
}

before(async () => {
  ctx = await startUiPool({ workers: '1' });
  ({ d, fake } = ctx);
  const r = await request(d.base, 'POST', '/api/admin/password', {
    headers: ctx.H, body: json({ old_password: 'admin', new_password: PASSWORD }),
  });
  assert.equal(r.status, 200, r.text);
  ctx.H = await login(d, 'admin', PASSWORD);
  A = await g.addToken(ctx);
  B = await g.addToken(ctx);
  mp4 = Buffer.from(await (await fetch(`${fake.url}/media/src.mp4`)).arrayBuffer());
  webp = Buffer.from(await (await fetch(`${fake.url}/media/src.webp`)).arrayBuffer());
  b = await openBrowser(d.base);
  ({ page } = b);
  await uiLogin(page, d.base, PASSWORD);
});

after(async () => {
  if (b) {
    assert.deepEqual(b.offHost, [], 'no request to another host');
    // The browser reports the 502s these tests provoke (Sora failing)
    // as console errors; nothing else may show up.
    const provoked = /^console error: Failed to load resource: the server responded with a status of 502 \(Bad Gateway\) \(https?:\/\/[^/]+\/api\/characters\//;
    assert.deepEqual(b.problems.filter((p) => !provoked.test(p)), [], 'no console error, page error or CSP refusal');
    assert.equal(b.problems.length, 2, 'the update and the delete Sora refused');
    await b.close();
  }
  assert.equal((await d.stop()).code, 0);
  assert.deepEqual(d.unexpectedErrors(), []);
  d.cleanup();
  await fake.close();
});

const dlg = () => page.locator('dialog[open]');
const toast = (text) => page.locator('.toast', { hasText: text }).last();
const rows = () => page.locator('#char-rows tr[data-id]');
const rowOf = (id) => page.locator(`#char-rows tr[data-id="${id}"]`);
const names = async () => rows().locator('td:nth-child(2) .strong').allTextContents();

// Waits for the table's next load after `fn` (the page counts them).
async function reloaded(fn) {
  const box = page.locator('#page-characters');
  const before = Number(await box.getAttribute('data-loads'));
  await fn();
  await page.waitForFunction((n) => Number(document.querySelector('#page-characters').dataset.loads) > n, before);
}

let cat;
let dog;
let owl;

test('the list: rows newest first, filters by token, state and search, the token page\'s link', async () => {
  cat = await makeCharacter(A, 'tabby.cat', 'Tabby');
  dog = await makeCharacter(A, 'brown.dog', 'Brown Dog');
  owl = await makeCharacter(B, 'snow.owl', XSS);
  await page.getByRole('link', { name: 'Characters', exact: true }).click();
  await page.locator('#page-characters[data-loads]').waitFor();
  assert.deepEqual(await names(), ['@snow.owl', '@brown.dog', '@tabby.cat']);
  assert.equal(await page.locator('#char-summary').textContent(), '3 of 3 characters');
  assert.deepEqual(await unlabelled(page), []);

  // The avatar Sora gave is on another origin: a link, never loaded.
  const link = rowOf(cat.id).getByRole('link', { name: 'avatar' });
  assert.equal(await link.getAttribute('href'), cat.profile_url);
  assert.equal(await rowOf(cat.id).locator('img').count(), 0);
  assert.match(await rowOf(cat.id).textContent(), new RegExp(`#${A.id}.*private.*ready.*no`));

  // The XSS probe is text.
  assert.equal(await rowOf(owl.id).locator('td:nth-child(3)').textContent(), XSS);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('#char-rows img').count(), 0);

  await reloaded(async () => {
    await page.getByLabel('Token id').fill(String(B.id));
    await page.getByRole('button', { name: 'Apply' }).click();
  });
  assert.deepEqual(await names(), ['@snow.owl']);
  await reloaded(async () => {
    await page.getByLabel('Token id').fill('');
    await page.getByLabel('Search username or display name').fill('DOG');
    await page.getByRole('button', { name: 'Apply' }).click();
  });
  assert.deepEqual(await names(), ['@brown.dog']);
  await reloaded(async () => {
    await page.getByLabel('Search username or display name').fill('');
    await page.getByLabel('State', { exact: true }).selectOption('processing');
    await page.getByRole('button', { name: 'Apply' }).click();
  });
  assert.equal(await rows().count(), 0);
  assert.equal(await page.locator('#char-rows').textContent(), 'Nothing to show.');
  await reloaded(async () => {
    await page.getByLabel('State', { exact: true }).selectOption('ready');
    await page.getByRole('button', { name: 'Apply' }).click();
  });
  assert.equal(await rows().count(), 3);

  // A malformed token id is refused at its field, without a request.
  await page.getByLabel('Token id').fill('-3');
  await page.getByRole('button', { name: 'Apply' }).click();
  const tokErr = page.locator('.field:has([name="token_id"]) .field-error');
  await tokErr.waitFor({ state: 'visible' });
  assert.equal(await tokErr.textContent(), 'The token id must be a positive whole number.');
  await page.getByLabel('Token id').fill('');

  // From a token's row on the Tokens page to its characters.
  await page.getByRole('link', { name: 'Tokens', exact: true }).click();
  await page.locator('#page-tokens[data-loads]').waitFor();
  await page.locator(`a[href="#/characters/${A.id}"]`).click();
  await page.locator('#page-characters[data-loads]').waitFor();
  assert.equal(await page.getByLabel('Token id').inputValue(), String(A.id));
  await page.waitForFunction(() => document.querySelectorAll('#char-rows tr[data-id]').length === 2);
  assert.deepEqual(await names(), ['@brown.dog', '@tabby.cat']);
  await b.shot(page, 'characters');
});

test('edit: a refused value at its field, Sora failing on the form, a good edit on Sora and here', async () => {
  await page.goto(`${d.base}/#/characters`);
  await page.locator('#page-characters[data-loads]').waitFor();
  await rowOf(cat.id).getByRole('button', { name: 'Details character @tabby.cat' }).click();
  const form = dlg();
  assert.match(await form.locator('dl').textContent(), new RegExp(cat.character_id));
  assert.deepEqual(await unlabelled(page), []);

  // A blank display name: the server's refusal under the field.
  await form.getByLabel('Display name').fill('   ');
  await form.getByRole('button', { name: 'Save' }).click();
  const nameErr = form.locator('.field:has([name="display_name"]) .field-error');
  await nameErr.waitFor({ state: 'visible' });
  assert.equal(await nameErr.textContent(), 'display_name must be a non-empty string of at most 256 bytes');
  assert.equal(await form.getByLabel('Display name').getAttribute('aria-invalid'), 'true');

  // Sora refuses: its message on the form, nothing changed.
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: 'POST /backend/project_y/cameos/by_id/{id}/update_v2', status: 500,
    body: { error: { message: 'Cameo store is down', type: 'server_error', param: null, code: 'boom' } } });
  await form.getByLabel('Display name').fill('Sir Tabby');
  await form.getByRole('button', { name: 'Save' }).click();
  const area = form.locator('.form-error');
  await area.waitFor({ state: 'visible' });
  assert.equal(await area.textContent(), 'Sora refused the update (status 500): Cameo store is down');
  const same = await request(d.base, 'GET', `/api/characters/${cat.id}`, { headers: ctx.H });
  assert.deepEqual(same.json.character, cat);
  await b.shot(page, 'characters-edit-refused');

  // Then it works: Sora's cameo and the row both change.
  await form.getByLabel('Instruction set', { exact: true }).fill('Orange stripes, green eyes.');
  await form.getByLabel('Visibility').selectOption('public');
  await reloaded(async () => {
    await form.getByRole('button', { name: 'Save' }).click();
    await toast('Character @tabby.cat updated.').waitFor();
  });
  assert.equal(await dlg().count(), 0);
  const cameo = (await fakeState()).cameos.find((c) => c.id === cat.cameo_id);
  assert.deepEqual([cameo.display_name, cameo.visibility, cameo.instruction_set],
    ['Sir Tabby', 'public', { value: [{ type: 'text', value: 'Orange stripes, green eyes.' }] }]);
  assert.equal(await rowOf(cat.id).locator('td:nth-child(3)').textContent(), 'Sir Tabby');
  assert.match(await rowOf(cat.id).locator('td:nth-child(5)').textContent(), /public/);
});

test('delete: after a confirmation, on Sora and here; only here when asked', async () => {
  await page.goto(`${d.base}/#/characters`);
  await page.locator('#page-characters[data-loads]').waitFor();
  // Cancel keeps it.
  await rowOf(dog.id).getByRole('button', { name: 'Delete character @brown.dog' }).click();
  await dlg().getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await rowOf(dog.id).count(), 1);

  await rowOf(dog.id).getByRole('button', { name: 'Delete character @brown.dog' }).click();
  assert.match(await dlg().textContent(), /Delete character @brown\.dog\? It is deleted on Sora/);
  await reloaded(async () => {
    await dlg().getByRole('button', { name: 'Delete', exact: true }).click();
    await toast('Character @brown.dog deleted.').waitFor();
  });
  assert.equal(await rowOf(dog.id).count(), 0);
  assert.equal((await fakeState()).characters.find((c) => c.character_id === dog.character_id), undefined);

  // Sora failing: the message in the dialog, the row stays; local only.
  await g.fakeCall(fake, 'POST', '/__fake/arm', { route: 'DELETE /backend/project_y/characters/{id}', status: 503 });
  await rowOf(owl.id).getByRole('button', { name: 'Delete character @snow.owl' }).click();
  await dlg().getByRole('button', { name: 'Delete', exact: true }).click();
  const err = dlg().locator('.form-error');
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), /^Sora did not delete the character \(status 503\)/);
  await dlg().getByLabel('Only remove the record here (leave the character on Sora)').check();
  await reloaded(async () => {
    await dlg().getByRole('button', { name: 'Delete', exact: true }).click();
    await toast('Character @snow.owl deleted.').waitFor();
  });
  assert.equal(await rowOf(owl.id).count(), 0);
  assert.ok((await fakeState()).characters.find((c) => c.character_id === owl.character_id), 'still on Sora');
  assert.deepEqual(await names(), ['@tabby.cat']);
});

test('in Chinese: the page and its messages switch with the language', async () => {
  await page.getByLabel('Language').selectOption('zh-CN');
  await page.locator('#page-characters h1', { hasText: '角色' }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  await page.locator('#page-characters[data-loads]').waitFor();
  await page.locator('#char-summary', { hasText: '显示 1 / 共 1 个角色' }).waitFor();
  assert.equal(await rows().locator('td:nth-child(5)').textContent(), '公开');
  assert.deepEqual(await unlabelled(page), []);
  await page.getByLabel('语言').selectOption('en');
  await page.locator('#page-characters h1', { hasText: 'Characters' }).waitFor();
});
