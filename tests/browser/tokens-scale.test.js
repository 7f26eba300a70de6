'use strict';
// The token page with 10,000 tokens: imported through the real API, then
// shown, searched, filtered, sorted and paged in the browser. The times
// are printed as figures, never asserted; what is asserted is what the
// page shows.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { request } = require('../integration/lib/daemon');
const { startUiPool, openBrowser, uiLogin } = require('./lib/browser');

const N = 10000;
const PASSWORD = 'scale-test-pw';
let ctx;
let b;
let emails;

before(async () => {
  ctx = await startUiPool({ sections: { limits: { max_tokens: String(N + 100) } } });
  // Accounts in chunks (the fake's answer for 10,000 at once is large);
  // every tenth disabled, so the state filter has something to find.
  const items = [];
  for (let i = 0; i < N; i += 2500) {
    const accs = await ctx.fake.account({ count: 2500, email: `scale{n}@example.test`, remaining: 7 });
    for (const a of accs) items.push({ email: a.email, access_token: a.access_token, is_active: items.length % 10 !== 0 });
  }
  emails = items.map((x) => x.email).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const t0 = Date.now();
  const r = await request(ctx.d.base, 'POST', '/api/tokens/import', {
    headers: ctx.H, body: JSON.stringify({ tokens: items }), timeout: 300000,
  });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.json.added, N, r.text.slice(0, 300));
  process.stdout.write(`# import of ${N} tokens: ${Date.now() - t0} ms\n`);
  const pw = await request(ctx.d.base, 'POST', '/api/admin/password', {
    headers: ctx.H, body: JSON.stringify({ old_password: 'admin', new_password: PASSWORD }),
  });
  assert.equal(pw.status, 200, pw.text);
  b = await openBrowser(ctx.d.base);
});

after(async () => {
  if (b) await b.close();
  assert.equal((await ctx.d.stop()).code, 0);
  assert.deepEqual(ctx.d.unexpectedErrors(), []);
  ctx.d.cleanup();
  await ctx.fake.close();
});

const measure = (page, name) => page.evaluate((n) => {
  const all = performance.getEntriesByName(n);
  return all.length ? Math.round(all[all.length - 1].duration) : null;
}, name);

test('10,000 tokens: first paint, search, state filter, sort and paging', async () => {
  const { page } = b;
  await uiLogin(page, ctx.d.base, PASSWORD);
  const t0 = Date.now();
  await page.goto(`${ctx.d.base}/#/tokens`);
  await page.locator('#page-tokens[data-loaded="10000"]').waitFor({ timeout: 60000 });
  await page.locator('#tok-rows tr').nth(49).waitFor();
  const paint = Date.now() - t0;
  const summary = page.locator('#tok-summary');
  assert.equal(await summary.textContent(), '10,000 of 10,000 tokens');
  assert.equal(await page.locator('#tok-rows tr').count(), 50, 'one page of rows in the document');
  assert.equal(await page.locator('#tok-pageof').textContent(), 'Page 1 of 200');
  const load = await measure(page, 'tokens:load');
  await b.shot(page, 'tokens-10000');

  // One token by its e-mail.
  let t1 = Date.now();
  await page.getByLabel('Search').fill('scale777@');
  await page.locator('#tok-summary', { hasText: /^1 of 10,000 tokens$/ }).waitFor();
  const search = Date.now() - t1;
  const searchApply = await measure(page, 'tokens:filter');
  assert.equal(await page.locator('#tok-rows tr').count(), 1);
  assert.match(await page.locator('#tok-rows tr').first().textContent(), /scale777@example\.test/);

  // Every tenth is disabled.
  await page.getByLabel('Search').fill('');
  await page.locator('#tok-summary', { hasText: /^10,000 of/ }).waitFor();
  t1 = Date.now();
  await page.getByLabel('State', { exact: true }).selectOption('disabled');
  await page.locator('#tok-summary', { hasText: /^1,000 of 10,000 tokens$/ }).waitFor();
  const filter = Date.now() - t1;
  const filterApply = await measure(page, 'tokens:filter');
  const states = await page.locator('#tok-rows tr').evaluateAll((rows) => rows.map((r) => r.dataset.state));
  assert.ok(states.length === 50 && states.every((s) => s === 'disabled'), states.join());
  await page.getByLabel('State', { exact: true }).selectOption('');

  // Sorted by e-mail, then the last page.
  t1 = Date.now();
  await page.getByRole('button', { name: 'Sort by Account' }).click();
  await page.locator('th[data-col="account"][aria-sort="ascending"]').waitFor();
  const sort = Date.now() - t1;
  const sortApply = await measure(page, 'tokens:filter');
  const first = await page.locator('#tok-rows tr .strong').first().textContent();
  assert.equal(first, emails[0], 'e-mail order is text order');
  assert.equal(await page.locator('#tok-rows tr .strong').nth(1).textContent(), emails[1]);
  await page.getByLabel('Rows per page').selectOption('200');
  for (let i = 0; i < 2; i += 1) await page.getByRole('button', { name: 'Next' }).click();
  assert.equal(await page.locator('#tok-pageof').textContent(), 'Page 3 of 50');
  assert.equal(await page.locator('#tok-rows tr').count(), 200);

  // Selecting every match and the export of the whole pool still work.
  await page.getByLabel('Select every token on this page').check();
  await page.getByRole('button', { name: /^Select all 10,000 matching$/ }).click();
  assert.equal(await page.locator('#tok-selcount').textContent(), '10,000 selected');
  t1 = Date.now();
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export' }).click()]);
  const exported = JSON.parse(require('node:fs').readFileSync(await dl.path(), 'utf8'));
  const exportMs = Date.now() - t1;
  assert.equal(exported.length, N);
  assert.ok(exported.every((x) => x.access_token && x.access_token.startsWith('eyJ')));

  process.stdout.write(`# 10,000 tokens: first paint ${paint} ms (fetch, parse and render ${load} ms); `
    + `search ${search} ms (filter and render ${searchApply} ms); state filter ${filter} ms (${filterApply} ms); `
    + `sort ${sort} ms (${sortApply} ms); export ${exportMs} ms\n`);
  assert.deepEqual(b.offHost, []);
  assert.deepEqual(b.problems, []);
});
