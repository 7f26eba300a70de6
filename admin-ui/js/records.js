// records.js: what the job and request-log pages share: a filter form
// whose values go to the server as query parameters (status, model,
// token, time range, limit), a table of the rows, paging to older rows
// (before=<id>), export of the loaded rows as CSV or JSON, a live
// refresh, and a detail dialog per row.
import { h, replace, uid } from './dom.js';
import { t, fmtNum } from './i18n.js';
import * as api from './api.js';
import { field, button, toast, errorText, download, csv, localToEpoch, every } from './ui.js';

// opts: prefix (element ids), title, endpoint, rowsOf(answer), filters
// (extra field specs, each {name, label, type, options}), statusOptions,
// columns [{key, label, render(row) -> node|string}], exportColumns,
// detail(row), live (ms: refresh while shown), caption.
export function recordsView(box, opts) {
  const p = opts.prefix;
  const st = { rows: [], more: false, stop: null, gone: false, loaded: false };
  const status = field({ name: 'status', label: t('rec.status'), type: 'select', options: [['', t('common.any')], ...opts.statusOptions] });
  const model = field({ name: 'model', label: t('rec.model'), placeholder: 'sora-image' });
  const token = field({ name: 'token_id', label: t('rec.token'), type: 'number', min: 1 });
  const since = field({ name: 'since', label: t('rec.since'), type: 'datetime-local' });
  const until = field({ name: 'until', label: t('rec.until'), type: 'datetime-local' });
  const limit = field({ name: 'limit', label: t('rec.limit'), type: 'select', options: [['100', '100'], ['500', '500'], ['1000', '1000']] });
  const extra = (opts.filters || []).map((f) => field(f));
  const fields = [status, model, token, since, until, ...extra, limit];
  const liveId = uid('live');
  const live = h('input', { type: 'checkbox', role: 'switch', id: liveId, checked: true });
  const summary = h('p', { class: 'muted', role: 'status', id: `${p}-summary` }, t('common.loading'));
  const tbody = h('tbody', { id: `${p}-rows` });
  const older = button(t('rec.older'), () => load(true), { small: true });
  const form = h('form', { class: 'filters', id: `${p}-filters`, 'aria-label': t('rec.filters'), novalidate: true },
    fields.map((f) => f.el),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary btn-sm' }, t('common.apply')),
      h('button', { type: 'reset', class: 'btn btn-sm' }, t('common.reset'))));
  const table = h('table', { class: 'table cards-on-phone', id: `${p}-table` },
    h('caption', { class: 'visually-hidden' }, opts.caption),
    h('thead', null, h('tr', null, opts.columns.map((c) => h('th', { scope: 'col' }, c.label)),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('common.details'))))),
    tbody);

  replace(box,
    h('div', { class: 'page-head' }, h('h1', null, opts.title), summary),
    form,
    h('div', { class: 'toolbar' },
      h('div', { class: 'field field-check' }, live, h('label', { for: liveId }, t('rec.live'))),
      h('div', { class: 'toolbar-buttons' },
        button(t('common.refresh'), () => load(false), { small: true }),
        button(t('common.exportCsv'), () => exportRows('csv'), { small: true }),
        button(t('common.exportJson'), () => exportRows('json'), { small: true }))),
    h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'pager' }, older));

  function params(beforeId) {
    const q = {
      status: status.value(), model: model.value().trim(), token_id: token.value() || '',
      since: localToEpoch(since.value()), until: localToEpoch(until.value()), limit: limit.value(),
    };
    for (const f of extra) q[f.name] = f.value();
    if (beforeId) q.before = beforeId;
    return q;
  }

  async function load(more) {
    const last = st.rows[st.rows.length - 1];
    if (more && !last) return;
    let rows;
    try {
      rows = opts.rowsOf(await api.get(`${opts.endpoint}${api.query(params(more ? last.id : null))}`));
    } catch (e) {
      if (!st.gone && e.status !== 401) summary.textContent = errorText(e);
      return;
    }
    if (st.gone) return;
    const next = more ? st.rows.concat(rows) : rows;
    const same = !more && st.loaded && JSON.stringify(next) === JSON.stringify(st.rows);
    st.rows = next;
    st.more = rows.length >= Number(limit.value());
    st.loaded = true;
    // A refresh that brings nothing new leaves the table (and the focus
    // in it) alone.
    if (!same) render();
    box.dataset.rows = String(st.rows.length);
  }

  function render() {
    tbody.replaceChildren(...st.rows.map((r) => h('tr', { dataset: { id: r.id, status: r.status || r.status_code } },
      opts.columns.map((c) => h('td', { 'data-label': c.label, class: c.cls }, c.render(r))),
      h('td', { 'data-label': t('common.details') },
        button(t('common.details'), () => opts.detail(r), { small: true, ariaLabel: `${t('common.details')} ${r.job_id || r.request_id || r.id}` })))));
    if (st.rows.length === 0) {
      tbody.appendChild(h('tr', null, h('td', { colspan: opts.columns.length + 1, class: 'muted' }, t('common.noRows'))));
    }
    summary.textContent = t('rec.count', { n: fmtNum(st.rows.length) });
    older.hidden = !st.more;
  }

  function exportRows(kind) {
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
    const name = `${p}-${stamp}.${kind}`;
    const blob = kind === 'csv'
      ? new Blob([csv(st.rows, opts.exportColumns)], { type: 'text/csv;charset=utf-8' })
      : new Blob([JSON.stringify(st.rows, null, 2)], { type: 'application/json' });
    download(blob, name);
    toast(t('rec.exported', { n: fmtNum(st.rows.length), name }), 'ok');
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); load(false); });
  form.addEventListener('reset', () => setTimeout(() => load(false), 0));
  const startLive = () => {
    if (st.stop) st.stop();
    st.stop = live.checked ? every(opts.live, () => load(false)) : null;
    if (!live.checked) load(false);
  };
  live.addEventListener('change', startLive);
  startLive();
  return {
    stop() { st.gone = true; if (st.stop) st.stop(); },
    find: (pred) => st.rows.find(pred),
  };
}

export const recordMessages = {
  en: {
    'rec.filters': 'Filters',
    'rec.status': 'Status',
    'rec.model': 'Model',
    'rec.token': 'Token ID',
    'rec.since': 'From',
    'rec.until': 'Until',
    'rec.limit': 'Rows',
    'rec.live': 'Live (refresh every 2 seconds)',
    'rec.older': 'Older rows',
    'rec.count': '{n} rows',
    'rec.exported': 'Exported {n} rows to {name}.',
  },
  'zh-CN': {
    'rec.filters': '筛选',
    'rec.status': '状态',
    'rec.model': '模型',
    'rec.token': 'Token ID',
    'rec.since': '开始时间',
    'rec.until': '结束时间',
    'rec.limit': '行数',
    'rec.live': '实时（每 2 秒刷新）',
    'rec.older': '更早的记录',
    'rec.count': '{n} 行',
    'rec.exported': '已导出 {n} 行到 {name}。',
  },
};
