// main.js: the app shell. Login, the forced change of the default
// password, logout and the return to the login page when a session ends;
// then the header (navigation from the page table, language, logout) and
// the hash router that mounts one page module at a time.
import { h, replace } from './dom.js';
import * as i18n from './i18n.js';
import * as api from './api.js';
import { field, formError, showError, clearErrors, busy, toast, errorText } from './ui.js';
import { messages } from './messages.js';
import { pages } from './pages/index.js';

const { t } = i18n;
i18n.register(messages);
for (const p of pages) i18n.register(p.messages);
i18n.init();

const root = document.getElementById('app');
const state = { username: null, current: null, unmount: null };
let shell = null;

function langSwitch() {
  const sel = h('select', { id: 'lang', 'aria-label': t('shell.language') },
    i18n.LANGS.map((l) => h('option', { value: l.code, lang: l.code }, l.name)));
  sel.value = i18n.lang();
  sel.addEventListener('change', () => i18n.setLang(sel.value));
  return h('div', { class: 'lang' }, h('label', { for: 'lang', class: 'visually-hidden' }, t('shell.language')), sel);
}

function leave() {
  if (state.unmount) {
    try { state.unmount(); } catch (_) { /* a page's cleanup must not block the shell */ }
  }
  state.unmount = null;
  state.current = null;
  document.querySelectorAll('dialog').forEach((d) => d.close());
}

// ---------------------------------------------------------------- login

function loginView(notice) {
  leave();
  shell = null;
  document.title = `${t('login.title')} · sora2api`;
  const user = field({ name: 'username', label: t('login.username'), autocomplete: 'username', required: true, value: 'admin' });
  const pass = field({ name: 'password', label: t('login.password'), type: 'password', autocomplete: 'current-password', required: true });
  const area = formError();
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, t('login.submit'));
  const form = h('form', { class: 'card auth-card', novalidate: true, 'aria-labelledby': 'login-h' },
    h('h1', { id: 'login-h' }, 'sora2api'),
    h('p', { class: 'muted' }, t('login.lead')),
    notice ? h('p', { class: 'notice', role: 'status', id: 'login-notice' }, notice) : null,
    user.el, pass.el, area, submit);
  form.addEventListener('submit', busy(form, async () => {
    clearErrors([user, pass], area);
    try {
      const r = await api.post('/api/login', { username: user.value(), password: pass.value() }, { auth: false });
      api.setSession(r.token);
      state.username = user.value();
      if (r.default_password) changePasswordView(pass.value());
      else startApp();
    } catch (e) {
      area.textContent = e.status === 401 ? t('login.invalid') : errorText(e);
      area.hidden = false;
      pass.input.select();
    }
  }));
  replace(root, h('main', { class: 'auth', id: 'main' }, langSwitch(), form));
  (pass.input.value ? submit : user.input.value ? pass.input : user.input).focus();
}

// The default password must go before anything else is shown.
function changePasswordView(oldPassword) {
  leave();
  shell = null;
  document.title = `${t('pw.title')} · sora2api`;
  const old = field({ name: 'old_password', label: t('pw.old'), type: 'password', autocomplete: 'current-password', value: oldPassword || '', required: true });
  const user = field({ name: 'username', label: t('pw.username'), autocomplete: 'username', value: state.username || 'admin', required: true });
  const pw = field({ name: 'new_password', label: t('pw.new'), type: 'password', autocomplete: 'new-password', required: true, hint: t('pw.rule') });
  const again = field({ name: 'confirm', label: t('pw.confirm'), type: 'password', autocomplete: 'new-password', required: true });
  const area = formError();
  const fields = [old, user, pw, again];
  const form = h('form', { class: 'card auth-card', novalidate: true, 'aria-labelledby': 'pw-h' },
    h('h1', { id: 'pw-h' }, t('pw.title')),
    h('p', { class: 'notice', role: 'status' }, t('pw.forced')),
    old.el, user.el, pw.el, again.el, area,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn', onclick: () => logout() }, t('shell.logout')),
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('pw.submit'))));
  form.addEventListener('submit', busy(form, async () => {
    clearErrors(fields, area);
    if (pw.value() !== again.value()) {
      again.setError(t('pw.mismatch'));
      again.input.focus();
      return;
    }
    if (pw.value() === old.value()) {
      pw.setError(t('pw.same'));
      pw.input.focus();
      return;
    }
    try {
      const body = { old_password: old.value(), new_password: pw.value() };
      if (user.value() !== state.username) body.username = user.value();
      await api.post('/api/admin/password', body);
      await relogin(user.value(), pw.value(), t('pw.done'));
    } catch (e) {
      showError(fields, area, e);
    }
  }));
  replace(root, h('main', { class: 'auth', id: 'main' }, langSwitch(), form));
  (oldPassword ? pw.input : old.input).focus();
}

// After a password change every session has ended: log in again with the
// new credentials.
async function relogin(username, password, notice) {
  api.setSession(null);
  try {
    const r = await api.post('/api/login', { username, password }, { auth: false });
    api.setSession(r.token);
    state.username = username;
    toast(notice, 'ok');
    startApp();
  } catch (e) {
    loginView(notice);
  }
}

async function logout() {
  try { await api.post('/api/logout'); } catch (_) { /* ends here either way */ }
  api.setSession(null);
  state.username = null;
  loginView(t('login.loggedOut'));
}

api.onExpired(() => {
  state.username = null;
  loginView(t('login.expired'));
});

// ---------------------------------------------------------------- app

function pageFor(hash) {
  const id = (hash || '').replace(/^#\/?/, '').split('/')[0];
  return pages.find((p) => p.id === id) || pages[0];
}

function buildShell() {
  const nav = h('nav', { class: 'nav', 'aria-label': t('shell.nav') },
    h('ul', null, pages.map((p) => h('li', null,
      h('a', { href: `#/${p.id}`, dataset: { page: p.id } }, t(p.nav))))));
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, t('shell.skip')),
    h('span', { class: 'brand' }, 'sora2api'),
    nav,
    h('div', { class: 'topbar-end' },
      langSwitch(),
      h('span', { class: 'who', title: t('shell.signedIn') }, state.username || ''),
      h('button', { type: 'button', class: 'btn btn-ghost', id: 'logout', onclick: () => logout() }, t('shell.logout'))));
  replace(root, header, main);
  shell = { nav, main };
}

function route() {
  if (!shell) return;
  const page = pageFor(location.hash);
  leave();
  state.current = page;
  for (const a of shell.nav.querySelectorAll('a')) {
    if (a.dataset.page === page.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${t(page.nav)} · sora2api`;
  const box = h('div', { class: 'page', id: `page-${page.id}` });
  replace(shell.main, box);
  const app = { t, api, toast, username: () => state.username, route: location.hash };
  const un = page.mount(box, app);
  state.unmount = typeof un === 'function' ? un : null;
  const head = box.querySelector('h1');
  if (head && document.activeElement && document.activeElement !== document.body
      && !shell.main.contains(document.activeElement)) {
    head.setAttribute('tabindex', '-1');
    head.focus();
  }
}

function startApp() {
  leave();
  buildShell();
  if (!location.hash) history.replaceState(null, '', `#/${pages[0].id}`);
  route();
}

window.addEventListener('hashchange', () => { if (shell && api.hasSession()) route(); });

i18n.onChange(() => {
  if (api.hasSession() && shell && root.querySelector('.topbar')) {
    buildShell();
    route();
  } else if (root.querySelector('#pw-h')) {
    changePasswordView('');
  } else {
    loginView(document.getElementById('login-notice') ? document.getElementById('login-notice').textContent : null);
  }
});

// ---------------------------------------------------------------- boot

async function boot() {
  if (!api.hasSession()) {
    loginView(null);
    return;
  }
  try {
    const s = await api.get('/api/session');
    state.username = s.username;
    if (s.default_password) changePasswordView('');
    else startApp();
  } catch (e) {
    if (e.status !== 401) loginView(errorText(e));
    // a 401 has shown the login page already
  }
}

boot();
