'use strict';
// Browser tests: Debian's chromium, headless, driven by playwright-core,
// against the real daemon (serving admin-ui/ from the repository) and the
// fake upstream. Every request the page makes to a host other than the
// daemon is recorded and refused; console errors, page errors and CSP
// refusals are recorded too, and each test file asserts all three lists
// stay empty. Screenshots go to <builddir>/ui-screenshots/.
const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');
const { ROOT, request } = require('../../integration/lib/daemon');
const g = require('../../integration/lib/gen');

const BUILDDIR = process.env.S2A_BUILDDIR || 'build';
const SHOTS = path.resolve(ROOT, BUILDDIR, 'ui-screenshots');
const UI_DIR = path.join(ROOT, 'admin-ui');

function chromiumPath() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`no chromium found (tried ${candidates.join(', ')}): run scripts/install-deps, or set CHROMIUM`);
  }
  return found;
}

// The daemon serving the repository's admin UI, wired to a fake upstream.
function startUiPool(opts = {}) {
  const sections = Object.assign({}, opts.sections || {}, { paths: { admin_ui_dir: UI_DIR } });
  return g.startGenPool(Object.assign({}, opts, { sections }));
}

async function login(d, username = 'admin', password = 'admin') {
  const r = await request(d.base, 'POST', '/api/login', { body: JSON.stringify({ username, password }) });
  assert.equal(r.status, 200, r.text);
  return { Authorization: `Bearer ${r.json.token}` };
}

// A browser and a context whose every request is checked. Returns
// {browser, context, page, offHost, problems, newPage, shot, close}.
async function openBrowser(base, { viewport = { width: 1280, height: 900 }, locale = 'en-US' } = {}) {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Root in a container has no user namespace for the sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const origin = new URL(base).origin;
  const offHost = [];
  const problems = [];
  const contexts = [];
  async function newContext(o = {}) {
    const context = await browser.newContext({
      viewport: o.viewport || viewport, locale: o.locale || locale, acceptDownloads: true,
      serviceWorkers: 'block',
    });
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (/^https?:/i.test(u) && new URL(u).origin !== origin) {
        offHost.push(u);
        return route.abort('blockedbyclient');
      }
      return route.continue();
    });
    context.on('page', (p) => watch(p));
    contexts.push(context);
    return context;
  }
  function watch(page) {
    page.on('console', (m) => {
      const where = (m.location() && m.location().url) || '';
      // The browser reports every 4xx answer; those of the admin API are
      // the refusals the tests provoke (a file's 404 still counts).
      if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())
          && /^https?:\/\/[^/]+\/api\//.test(where)) return;
      if (m.type() === 'error' || /Content Security Policy|Refused to/i.test(m.text())) {
        problems.push(`console ${m.type()}: ${m.text()} (${where})`);
      }
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  }
  const context = await newContext();
  const page = await context.newPage();
  fs.mkdirSync(SHOTS, { recursive: true });
  return {
    browser, context, page, offHost, problems, newContext,
    shot: (p, name) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }),
    close: () => browser.close(),
  };
}

// Logs in through the login form (the password is not the default one).
async function uiLogin(page, base, password) {
  await page.goto(`${base}/`);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('.topbar').waitFor();
}

// Every form control in the document has an accessible name.
async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.type !== 'hidden' && !el.closest('[hidden]'))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
      && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 120)));
}

module.exports = { startUiPool, login, openBrowser, uiLogin, unlabelled, SHOTS, UI_DIR, chromiumPath };
