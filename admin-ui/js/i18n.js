// i18n.js: the two languages of the UI (English and Simplified Chinese),
// chosen from the browser's languages and switchable; the choice is
// remembered in localStorage. Messages are flat keys; each page module
// brings its own (see pages/index.js) and registers them here.

export const LANGS = [
  { code: 'en', name: 'English' },
  { code: 'zh-CN', name: '简体中文' },
];
const STORE = 'sora2api.lang';
const catalog = { en: {}, 'zh-CN': {} };
let current = 'en';
const listeners = [];

export function register(messages) {
  for (const [lang, table] of Object.entries(messages || {})) {
    Object.assign(catalog[lang] || (catalog[lang] = {}), table);
  }
}

function detect() {
  let stored = null;
  try { stored = localStorage.getItem(STORE); } catch (_) { /* private mode */ }
  if (stored && catalog[stored]) return stored;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    if (/^zh\b/i.test(l)) return 'zh-CN';
    if (/^en\b/i.test(l)) return 'en';
  }
  return 'en';
}

export function init() {
  current = detect();
  document.documentElement.lang = current;
}

export function lang() {
  return current;
}

export function setLang(code) {
  if (!catalog[code] || code === current) return;
  current = code;
  document.documentElement.lang = code;
  try { localStorage.setItem(STORE, code); } catch (_) { /* private mode */ }
  for (const fn of listeners) fn(code);
}

export function onChange(fn) {
  listeners.push(fn);
}

// t('tokens.count', {n: 3}): the message in the current language (English
// when missing), with {name} placeholders filled.
export function t(key, params) {
  let s = catalog[current][key];
  if (s === undefined) s = catalog.en[key];
  if (s === undefined) return key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
  }
  return s;
}

// Dates and numbers in the current language; times in the browser's zone.
export function fmtTime(v) {
  if (v === null || v === undefined || v === '') return '–';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return new Intl.DateTimeFormat(current, { dateStyle: 'short', timeStyle: 'medium' }).format(d);
}

export function fmtNum(v, opts) {
  if (v === null || v === undefined || v === '') return '–';
  return new Intl.NumberFormat(current, opts).format(v);
}
