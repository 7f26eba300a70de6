// ui.js: the shared widgets: labelled form fields with their error slot
// (single controls and groups of checkboxes), dialogs (native <dialog>:
// modal, Esc closes, focus kept inside), toasts in a live region, badges,
// a secret shown once with its copy button, downloads and CSV.
import { h, uid, replace, append } from './dom.js';
import { t } from './i18n.js';
import { ApiError } from './api.js';

// ---------------------------------------------------------------- toasts

export function toast(message, kind = 'info') {
  const region = document.getElementById(kind === 'error' ? 'alerts' : 'toasts');
  const el = h('div', { class: ['toast', `toast-${kind}`] }, message);
  region.appendChild(el);
  // The newest few only: a batch of actions must not bury the page.
  while (region.children.length > 3) region.firstElementChild.remove();
  setTimeout(() => el.remove(), kind === 'error' ? 9000 : 5000);
  return el;
}

// The message of an error for a person: the server's words when it gave
// some, else what went wrong at our end.
export function errorText(e) {
  if (e instanceof ApiError) {
    if (e.status === 0) return t('common.unreachable');
    return e.message;
  }
  return String(e && e.message ? e.message : e);
}

// ---------------------------------------------------------------- fields

// One labelled control. opts: label, name, type (text, password, number,
// url, checkbox, switch, select, textarea, datetime-local, file), value,
// options [[value, label]...], hint, and any input attribute (min, max,
// required, placeholder, autocomplete, rows, accept, maxlength).
// Returns {el, input, name, setError(msg), clear(), value()}.
export function field(opts) {
  const id = uid(opts.name || 'f');
  const errId = `${id}-err`;
  const hintId = `${id}-hint`;
  const type = opts.type || 'text';
  const attrs = {
    id, name: opts.name, required: opts.required, placeholder: opts.placeholder,
    autocomplete: opts.autocomplete || (type === 'password' ? 'off' : undefined),
    min: opts.min, max: opts.max, step: opts.step, maxlength: opts.maxlength,
    accept: opts.accept, spellcheck: opts.spellcheck, inputmode: opts.inputmode,
    readOnly: opts.readOnly,
    'aria-describedby': opts.hint ? hintId : undefined,
  };
  let input;
  if (type === 'select') {
    input = h('select', attrs, (opts.options || []).map(([v, l]) => h('option', { value: v }, l)));
    if (opts.value !== undefined) input.value = String(opts.value);
  } else if (type === 'textarea') {
    input = h('textarea', Object.assign(attrs, { rows: opts.rows || 3 }));
    input.value = opts.value === undefined || opts.value === null ? '' : String(opts.value);
  } else if (type === 'checkbox' || type === 'switch') {
    input = h('input', Object.assign(attrs, { type: 'checkbox', role: type === 'switch' ? 'switch' : undefined }));
    input.checked = Boolean(opts.value);
  } else {
    input = h('input', Object.assign(attrs, { type }));
    if (opts.value !== undefined && opts.value !== null && type !== 'file') input.value = String(opts.value);
  }
  const err = h('p', { class: 'field-error', id: errId, hidden: true });
  const hint = opts.hint ? h('p', { class: 'field-hint', id: hintId }, opts.hint) : null;
  const label = h('label', { for: id }, opts.label);
  const check = type === 'checkbox' || type === 'switch';
  const el = h('div', { class: ['field', check && 'field-check', opts.wide && 'field-wide'] },
    check ? [input, label] : [label, input], opts.extra || null, hint, err);
  const setError = (msg) => {
    err.textContent = msg;
    err.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', [opts.hint ? hintId : null, errId].filter(Boolean).join(' '));
  };
  const clear = () => {
    err.hidden = true;
    err.textContent = '';
    input.removeAttribute('aria-invalid');
    if (opts.hint) input.setAttribute('aria-describedby', hintId);
    else input.removeAttribute('aria-describedby');
  };
  const value = () => {
    if (check) return input.checked;
    if (type === 'number') return input.value.trim() === '' ? null : Number(input.value);
    return input.value;
  };
  return { el, input, name: opts.name, setError, clear, value };
}

// A set of checkboxes under one legend with one error slot: a field
// whose value is a list (event types, models). opts: name, label (the
// legend), options [[value, label]...], value (the checked values), hint.
// Returns what field() does, value() being the checked values in order.
export function checkGroup(opts) {
  const id = uid(opts.name || 'g');
  const errId = `${id}-err`;
  const hintId = `${id}-hint`;
  const on = new Set(opts.value || []);
  const inputs = (opts.options || []).map(([v], i) => h('input', {
    type: 'checkbox', id: `${id}-${i}`, name: opts.name, value: v, checked: on.has(v),
  }));
  const err = h('p', { class: 'field-error', id: errId, hidden: true });
  const hint = opts.hint ? h('p', { class: 'field-hint', id: hintId }, opts.hint) : null;
  const el = h('fieldset', { class: 'check-group', id, 'aria-describedby': opts.hint ? hintId : undefined },
    h('legend', null, opts.label),
    h('div', { class: 'check-list' }, inputs.map((input, i) => h('div', { class: 'field-check' },
      input, h('label', { for: input.id }, opts.options[i][1])))),
    hint, err);
  const setError = (msg) => {
    err.textContent = msg;
    err.hidden = false;
    el.setAttribute('aria-describedby', [opts.hint ? hintId : null, errId].filter(Boolean).join(' '));
    for (const i of inputs) i.setAttribute('aria-invalid', 'true');
  };
  const clear = () => {
    err.hidden = true;
    err.textContent = '';
    if (opts.hint) el.setAttribute('aria-describedby', hintId);
    else el.removeAttribute('aria-describedby');
    for (const i of inputs) i.removeAttribute('aria-invalid');
  };
  const value = () => inputs.filter((i) => i.checked).map((i) => i.value);
  return { el, input: inputs[0] || el, inputs, name: opts.name, setError, clear, value };
}

// Puts `text` on the clipboard: the Clipboard API where the page may use
// it, else the selection of `input` and the old copy command. Resolves
// true when it worked.
export async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* refused: try the selection */ }
  if (!input) return false;
  input.focus();
  input.select();
  try {
    return document.execCommand('copy');
  } catch (_) {
    return false;
  }
}

// A secret the server shows once (a webhook's signing secret, a new API
// key): the warning, the value in a read-only labelled box (selected, so
// it can be copied by hand too) and a copy button. opts: label, value,
// warning, id.
export function secretBox(opts) {
  const f = field({ name: 'secret', label: opts.label, value: opts.value, readOnly: true, spellcheck: 'false', autocomplete: 'off' });
  f.input.classList.add('mono');
  const copy = button(t('common.copy'), async () => {
    if (await copyText(opts.value, f.input)) toast(t('common.copied'), 'ok');
    else toast(t('common.copyFailed'), 'error');
  }, { kind: 'primary', small: true });
  f.input.addEventListener('focus', () => f.input.select());
  const line = h('div', { class: 'secret-line' });
  f.input.replaceWith(line);
  append(line, [f.input, copy]);
  return h('div', { class: 'secret', id: opts.id },
    h('p', { class: 'notice notice-warn', role: 'alert' }, opts.warning),
    f.el);
}

// A form's error area (for messages that belong to no field).
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

// Shows error `e` next to its field: the field the server named in
// "param", else the one `guess(message)` names, else the one whose name
// starts the message ("proxy_url must be ..."), else in `area`. Returns
// the field that got it, if any.
export function showError(fields, area, e, guess) {
  for (const f of fields) f.clear();
  if (area) { area.hidden = true; area.textContent = ''; }
  const msg = errorText(e);
  const byName = (n) => fields.find((f) => f.name === n || (f.aliases && f.aliases.includes(n)));
  let target = e instanceof ApiError && e.param ? byName(e.param) : null;
  if (!target && guess) {
    const n = guess(msg);
    if (n) target = byName(n);
  }
  if (!target) {
    const m = /^([a-z_]+)\b/.exec(msg);
    if (m) target = byName(m[1]);
  }
  if (target) {
    target.setError(msg);
    target.input.focus();
    return target;
  }
  if (area) {
    area.textContent = msg;
    area.hidden = false;
  } else {
    toast(msg, 'error');
  }
  return null;
}

export function clearErrors(fields, area) {
  for (const f of fields) f.clear();
  if (area) { area.hidden = true; area.textContent = ''; }
}

// A submit handler that disables the form's buttons while `fn` runs.
export function busy(form, fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    const buttons = [...form.querySelectorAll('button')];
    buttons.forEach((b) => { b.disabled = true; });
    form.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      form.removeAttribute('aria-busy');
    }
  };
}

// ---------------------------------------------------------------- dialogs

// A modal dialog. opts: title, body (nodes), wide, onClose. The returned
// object has el, body (the content box), close().
export function dialog(opts) {
  const titleId = uid('dlg');
  const body = h('div', { class: 'dialog-body' }, opts.body || null);
  const closeBtn = h('button', { type: 'button', class: 'btn btn-ghost dialog-x', 'aria-label': t('common.close') }, '×');
  const el = h('dialog', { class: ['dialog', opts.wide && 'dialog-wide'], 'aria-labelledby': titleId },
    h('header', { class: 'dialog-head' }, h('h2', { id: titleId }, opts.title), closeBtn),
    body);
  const self = {
    el, body,
    close() { if (el.open) el.close(); },
  };
  closeBtn.addEventListener('click', () => self.close());
  el.addEventListener('close', () => {
    el.remove();
    if (opts.onClose) opts.onClose();
  });
  document.body.appendChild(el);
  el.showModal();
  return self;
}

// Asks a yes/no question; resolves true when confirmed.
export function confirm(message, { confirmLabel, danger = false } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h('button', { type: 'button', class: ['btn', danger ? 'btn-danger' : 'btn-primary'] },
      confirmLabel || t('common.confirm'));
    const no = h('button', { type: 'button', class: 'btn' }, t('common.cancel'));
    const d = dialog({
      title: t('common.confirmTitle'),
      body: [h('p', null, message), h('div', { class: 'actions' }, no, yes)],
      onClose: () => resolve(answer),
    });
    yes.addEventListener('click', () => { answer = true; d.close(); });
    no.addEventListener('click', () => d.close());
    no.focus();
  });
}

// A dialog that follows a batch operation: a progress bar, then the
// outcome of each item. Returns {update(done, total), finish(results,
// describe)}.
export function progressDialog(title) {
  const bar = h('progress', { max: 1, value: 0 });
  const label = h('p', { class: 'progress-label', role: 'status' }, t('common.working'));
  const list = h('div', { class: 'batch-results' });
  const d = dialog({ title, body: [bar, label, list], wide: true });
  return {
    dialog: d,
    update(done, total) {
      bar.max = total;
      bar.value = done;
      label.textContent = t('common.progress', { done, total });
    },
    finish(results, describe) {
      const failed = results.filter((r) => !r.ok);
      label.textContent = t('common.batchDone', { ok: results.length - failed.length, failed: failed.length });
      if (failed.length) {
        replace(list, h('ul', { class: 'plain' },
          failed.map((r) => h('li', null, describe(r.item), ': ', errorText(r.error)))));
      }
    },
  };
}

// ---------------------------------------------------------------- bits

export function badge(text, kind = 'neutral', title) {
  return h('span', { class: ['badge', `badge-${kind}`], title }, text);
}

export function button(label, onclick, { kind = '', small = false, title, ariaLabel, type = 'button' } = {}) {
  return h('button', {
    type, class: ['btn', kind && `btn-${kind}`, small && 'btn-sm'], title, 'aria-label': ariaLabel, onclick,
  }, label);
}

// Hands `blob` to the browser as a download named `name`.
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, class: 'visually-hidden' });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// CSV text (RFC 4180) of `rows` by `columns` [[key, header]...]. A cell
// that a spreadsheet would run as a formula gets a leading apostrophe.
export function csv(rows, columns) {
  const cell = (v) => {
    if (v === null || v === undefined) return '';
    let s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [columns.map(([, head]) => cell(head)).join(',')];
  for (const r of rows) lines.push(columns.map(([k]) => cell(r[k])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

// "2026-01-02T03:04" (a datetime-local value) to unix seconds, or null.
export function localToEpoch(v) {
  if (!v) return null;
  const ms = new Date(v).getTime();
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

// Unix seconds to a datetime-local value in the browser's zone ('' for
// none).
export function epochToLocal(v) {
  if (v === null || v === undefined || v === '') return '';
  const d = new Date(Number(v) * 1000);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// Whether `url` is served by this daemon (and so may be embedded).
export function sameOrigin(url) {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch (_) {
    return false;
  }
}

// Starts `fn` now and every `ms` while the page is visible; returns a stop
// function. A run never overlaps the previous one.
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  let running = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden && !running) {
      running = true;
      try { await fn(); } catch (_) { /* shown by fn */ }
      running = false;
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
