// Named API keys (docs/api-keys.md): every key with its limits, its
// all-time usage and the live counters of the shared table (the rpm
// window, jobs running, quota used in the period), refreshed every few
// seconds; create (the key shown once, with a copy button), edit (an
// empty limit is unlimited, sent as null), enable, disable, delete
// (revoke); and a key's usage by day and model, with a CSV download. The
// model allow-list offers the ids of GET /api/models.
import { h, replace } from '../dom.js';
import { t, fmtNum, fmtTime } from '../i18n.js';
import * as api from '../api.js';
import {
  field, checkGroup, formError, showError, clearErrors, busy, toast, errorText, dialog, confirm, badge, button,
  secretBox, every, download, localToEpoch, epochToLocal,
} from '../ui.js';

const LIVE_MS = 2000;
const PERIODS = ['total', 'day', 'month'];
const LIMITS = [
  // [field, min, max]
  ['rpm', 1, 10000000],
  ['concurrency', 1, 100000],
  ['image_quota', 0, 1000000000],
  ['video_quota', 0, 1000000000],
];
const USAGE = ['requests', 'images', 'videos', 'video_seconds', 'failures'];

function who(k) {
  return `#${k.id} ${k.name}`;
}

function expired(k) {
  return k.expires_at !== null && k.expires_at !== undefined && k.expires_at * 1000 <= Date.now();
}

// "3 / 10", "3 / ∞".
function ofLimit(used, limit) {
  return `${fmtNum(used || 0)} / ${limit === null || limit === undefined ? '∞' : fmtNum(limit)}`;
}

// A row's look without what moves on its own (the window's countdown):
// a refresh redraws only rows whose signature changed.
function signature(k) {
  const live = Object.assign({}, k.live || {});
  delete live.window_reset_ms;
  return JSON.stringify(Object.assign({}, k, { live, expired: expired(k) }));
}

export default {
  id: 'keys',
  nav: 'nav.keys',
  messages: {
    en: {
      'nav.keys': 'API keys',
      'key.title': 'API keys',
      'key.lead': 'The keys clients of /v1 send as "Authorization: Bearer …", each with its own limits and usage. Key 1 is the key of the Settings page.',
      'key.summary': 'Keys: {n} · live counters updated {time}',
      'key.add': 'Create key',
      'key.caption': 'API keys, oldest first',
      'key.col.name': 'Name',
      'key.col.state': 'State',
      'key.col.limits': 'Limits',
      'key.col.access': 'Models and tokens',
      'key.col.live': 'Now',
      'key.col.usage': 'Usage (all time)',
      'key.col.created': 'Created',
      'key.enabled': 'enabled',
      'key.disabled': 'disabled',
      'key.expired': 'expired',
      'key.expires': 'expires {time}',
      'key.never': 'never expires',
      'key.noHint': 'set in Settings',
      'key.rpm': 'requests per minute: {n}',
      'key.conc': 'jobs at once: {n}',
      'key.imgQuota': 'images {period}: {n}',
      'key.vidQuota': 'videos {period}: {n}',
      'key.p.total': 'in all',
      'key.p.day': 'per day (UTC)',
      'key.p.month': 'per month (UTC)',
      'key.unlimited': 'no limits',
      'key.allModels': 'every model',
      'key.anyToken': 'any token',
      'key.group': 'token group {g}',
      'key.l.window': 'this minute',
      'key.l.running': 'running',
      'key.l.images': 'images',
      'key.l.videos': 'videos',
      'key.l.period': 'period ends {time}',
      'key.u.requests': 'requests: {n}',
      'key.u.images': 'images: {n}',
      'key.u.videos': 'videos: {n} ({s} s)',
      'key.u.failures': 'failures: {n}',
      'key.edit': 'Edit',
      'key.usage': 'Usage',
      'key.enable': 'Enable',
      'key.disable': 'Disable',
      'key.delete': 'Delete',
      'key.actionFor': '{action} key {who}',
      'key.addTitle': 'Create an API key',
      'key.editTitle': 'Edit key {who}',
      'key.f.name': 'Name',
      'key.f.nameHint': '1 to 100 characters, for you; clients never see it',
      'key.f.rpm': 'Requests per minute',
      'key.f.concurrency': 'Generation jobs at once',
      'key.f.image_quota': 'Image quota',
      'key.f.video_quota': 'Video quota',
      'key.f.limitHint': '{min} to {max}; empty: unlimited',
      'key.f.quota_period': 'Quota period',
      'key.f.expires_at': 'Expires at',
      'key.f.expiresHint': 'your time zone; empty: never',
      'key.f.token_group': 'Token group',
      'key.f.groupHint': 'only tokens of this group serve the key (A-Z a-z 0-9 . _ -); empty: any token',
      'key.f.models': 'Models it may use',
      'key.f.modelsHint': 'None checked: every model.',
      'key.f.modelsFailed': 'The model list could not be read: {message}',
      'key.f.enabled': 'Enabled',
      'key.f.number': 'Enter a whole number, or leave it empty.',
      'key.created': 'Key {who} created.',
      'key.updated': 'Key {who} updated.',
      'key.enabledMsg': 'Key {who} enabled.',
      'key.disabledMsg': 'Key {who} disabled: it is refused from now on.',
      'key.deleted': 'Key {who} deleted: it is refused from now on.',
      'key.confirmDisable': 'Disable key {who}? Every request with it is refused until it is enabled again.',
      'key.confirmDelete': 'Delete (revoke) key {who}? Every request with it is refused at once; its usage stays in the records. This cannot be undone.',
      'key.secretTitle': 'The new key {who}',
      'key.secretLabel': 'API key',
      'key.secretWarn': 'This is the only time the key is shown: copy it now. You will not see it again; if it is lost, delete the key and create another.',
      'key.secretDone': 'Done',
      'key.uTitle': 'Usage of key {who}',
      'key.u.from': 'From (UTC day)',
      'key.u.to': 'To (UTC day)',
      'key.u.rangeHint': 'both included; empty: no bound',
      'key.u.show': 'Show',
      'key.u.csv': 'Download CSV',
      'key.u.caption': 'Usage by UTC day and model',
      'key.u.day': 'Day',
      'key.u.model': 'Model',
      'key.u.requestsCol': 'Requests',
      'key.u.imagesCol': 'Images',
      'key.u.videosCol': 'Videos',
      'key.u.secondsCol': 'Video seconds',
      'key.u.failuresCol': 'Failures',
      'key.u.other': '(no generation)',
      'key.u.total': 'Total',
      'key.u.none': 'No usage in this range.',
      'key.u.downloaded': 'Saved {name}.',
    },
    'zh-CN': {
      'nav.keys': 'API Key',
      'key.title': 'API Key',
      'key.lead': '/v1 的客户端以 "Authorization: Bearer …" 发送的 Key，每个都有自己的限制和用量。Key 1 即系统配置页中的 API Key。',
      'key.summary': '共 {n} 个 Key · 实时计数更新于 {time}',
      'key.add': '创建 Key',
      'key.caption': 'API Key，最早的在前',
      'key.col.name': '名称',
      'key.col.state': '状态',
      'key.col.limits': '限制',
      'key.col.access': '模型与 Token',
      'key.col.live': '当前',
      'key.col.usage': '用量（累计）',
      'key.col.created': '创建时间',
      'key.enabled': '已启用',
      'key.disabled': '已禁用',
      'key.expired': '已过期',
      'key.expires': '过期时间 {time}',
      'key.never': '永不过期',
      'key.noHint': '在系统配置中设置',
      'key.rpm': '每分钟请求数：{n}',
      'key.conc': '同时任务数：{n}',
      'key.imgQuota': '图片额度（{period}）：{n}',
      'key.vidQuota': '视频额度（{period}）：{n}',
      'key.p.total': '总计',
      'key.p.day': '每天（UTC）',
      'key.p.month': '每月（UTC）',
      'key.unlimited': '无限制',
      'key.allModels': '全部模型',
      'key.anyToken': '任意 Token',
      'key.group': 'Token 分组 {g}',
      'key.l.window': '本分钟',
      'key.l.running': '运行中',
      'key.l.images': '图片',
      'key.l.videos': '视频',
      'key.l.period': '周期结束于 {time}',
      'key.u.requests': '请求：{n}',
      'key.u.images': '图片：{n}',
      'key.u.videos': '视频：{n}（{s} 秒）',
      'key.u.failures': '失败：{n}',
      'key.edit': '编辑',
      'key.usage': '用量',
      'key.enable': '启用',
      'key.disable': '禁用',
      'key.delete': '删除',
      'key.actionFor': '{action} Key {who}',
      'key.addTitle': '创建 API Key',
      'key.editTitle': '编辑 Key {who}',
      'key.f.name': '名称',
      'key.f.nameHint': '1 至 100 个字符，仅供您识别；客户端看不到',
      'key.f.rpm': '每分钟请求数',
      'key.f.concurrency': '同时进行的生成任务数',
      'key.f.image_quota': '图片额度',
      'key.f.video_quota': '视频额度',
      'key.f.limitHint': '{min} 至 {max}；留空：不限',
      'key.f.quota_period': '额度周期',
      'key.f.expires_at': '过期时间',
      'key.f.expiresHint': '您所在的时区；留空：永不过期',
      'key.f.token_group': 'Token 分组',
      'key.f.groupHint': '只由该分组的 Token 服务（A-Z a-z 0-9 . _ -）；留空：任意 Token',
      'key.f.models': '可用模型',
      'key.f.modelsHint': '都不勾选：全部模型。',
      'key.f.modelsFailed': '无法读取模型列表：{message}',
      'key.f.enabled': '启用',
      'key.f.number': '请输入整数，或留空。',
      'key.created': 'Key {who} 已创建。',
      'key.updated': 'Key {who} 已更新。',
      'key.enabledMsg': '已启用 Key {who}。',
      'key.disabledMsg': '已禁用 Key {who}：从现在起将被拒绝。',
      'key.deleted': '已删除 Key {who}：从现在起将被拒绝。',
      'key.confirmDisable': '禁用 Key {who}？重新启用之前，使用它的请求都会被拒绝。',
      'key.confirmDelete': '删除（吊销）Key {who}？使用它的请求会立即被拒绝；用量记录会保留。此操作无法撤销。',
      'key.secretTitle': '新的 Key {who}',
      'key.secretLabel': 'API Key',
      'key.secretWarn': 'Key 只显示这一次，请立即复制。之后将无法再查看；丢失后只能删除并重新创建。',
      'key.secretDone': '完成',
      'key.uTitle': 'Key {who} 的用量',
      'key.u.from': '开始日期（UTC）',
      'key.u.to': '结束日期（UTC）',
      'key.u.rangeHint': '包含首尾两天；留空：不限',
      'key.u.show': '查询',
      'key.u.csv': '下载 CSV',
      'key.u.caption': '按 UTC 日期和模型统计的用量',
      'key.u.day': '日期',
      'key.u.model': '模型',
      'key.u.requestsCol': '请求',
      'key.u.imagesCol': '图片',
      'key.u.videosCol': '视频',
      'key.u.secondsCol': '视频秒数',
      'key.u.failuresCol': '失败',
      'key.u.other': '（非生成请求）',
      'key.u.total': '合计',
      'key.u.none': '该范围内没有用量。',
      'key.u.downloaded': '已保存 {name}。',
    },
  },

  mount(box) {
    const st = { rows: [], sigs: new Map(), models: null, gone: false, loaded: false };
    const summary = h('p', { class: 'muted', role: 'status', id: 'key-summary' }, t('common.loading'));
    const tbody = h('tbody', { id: 'key-rows' });
    const cols = ['key.col.name', 'key.col.state', 'key.col.limits', 'key.col.access', 'key.col.live', 'key.col.usage',
      'key.col.created', 'common.actions'].map((k) => t(k));
    replace(box,
      h('div', { class: 'page-head' }, h('h1', null, t('key.title')), summary),
      h('p', { class: 'muted' }, t('key.lead')),
      h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-buttons' },
        button(t('key.add'), () => keyForm(null), { kind: 'primary', small: true }),
        button(t('common.refresh'), () => load(), { small: true }))),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table keys cards-on-phone', id: 'key-table' },
        h('caption', { class: 'visually-hidden' }, t('key.caption')),
        h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))),
        tbody)));

    // The model ids for the allow-list, read once per page.
    function models() {
      if (!st.models) {
        st.models = api.get('/api/models').then((r) => r.data.map((m) => m.id));
        st.models.catch(() => { st.models = null; });
      }
      return st.models;
    }

    async function load() {
      let res;
      try {
        res = await api.get('/api/keys');
      } catch (e) {
        if (!st.gone && e.status !== 401) summary.textContent = errorText(e);
        return;
      }
      if (st.gone) return;
      st.rows = res.data;
      st.loaded = true;
      render();
      summary.textContent = t('key.summary', { n: fmtNum(st.rows.length), time: fmtTime(new Date().toISOString()) });
      box.dataset.loads = String(Number(box.dataset.loads || 0) + 1);
    }

    // Rows are redrawn one by one, only where something changed, so the
    // live refresh leaves the focus alone.
    function render() {
      const seen = new Set();
      const old = new Map([...tbody.querySelectorAll('tr[data-id]')].map((tr) => [tr.dataset.id, tr]));
      let prev = null;
      for (const k of st.rows) {
        const id = String(k.id);
        const sig = signature(k);
        seen.add(id);
        let tr = old.get(id);
        if (!tr || st.sigs.get(id) !== sig) {
          const fresh = rowEl(k);
          if (tr) tr.replaceWith(fresh);
          tr = fresh;
          st.sigs.set(id, sig);
        }
        const want = prev ? prev.nextSibling : tbody.firstChild;
        if (want !== tr) tbody.insertBefore(tr, want);
        prev = tr;
      }
      for (const [id, tr] of old) if (!seen.has(id)) { tr.remove(); st.sigs.delete(id); }
      const empty = tbody.querySelector('tr.empty');
      if (st.rows.length === 0 && !empty) {
        tbody.appendChild(h('tr', { class: 'empty' }, h('td', { colspan: cols.length, class: 'muted' }, st.loaded ? t('common.noRows') : t('common.loading'))));
      } else if (st.rows.length > 0 && empty) {
        empty.remove();
      }
    }

    function rowEl(k) {
      const act = (label, fn, kind) => button(label, fn, {
        small: true, kind, ariaLabel: t('key.actionFor', { action: label, who: who(k) }),
      });
      const period = t(`key.p.${k.quota_period}`);
      const live = k.live || {};
      const usage = k.usage || {};
      const line = (name, text) => h('span', { class: 'sub', dataset: { live: name } }, text);
      const limits = [
        k.rpm !== null ? t('key.rpm', { n: fmtNum(k.rpm) }) : null,
        k.concurrency !== null ? t('key.conc', { n: fmtNum(k.concurrency) }) : null,
        k.image_quota !== null ? t('key.imgQuota', { n: fmtNum(k.image_quota), period }) : null,
        k.video_quota !== null ? t('key.vidQuota', { n: fmtNum(k.video_quota), period }) : null,
      ].filter(Boolean);
      const state = !k.enabled ? ['disabled', 'disabled'] : expired(k) ? ['expired', 'expired'] : ['enabled', 'active'];
      return h('tr', { dataset: { id: k.id, state: state[0] } },
        h('td', { 'data-label': cols[0] }, h('span', { class: 'strong wrap' }, k.name),
          h('span', { class: 'sub mono' }, `#${k.id} · ${k.key_hint || t('key.noHint')}`)),
        h('td', { 'data-label': cols[1] }, badge(t(`key.${state[0]}`), state[1]),
          h('span', { class: ['sub', expired(k) && 'warn'] }, k.expires_at ? t('key.expires', { time: fmtTime(k.expires_at) }) : t('key.never'))),
        h('td', { 'data-label': cols[2] }, limits.length
          ? h('ul', { class: 'plain tight' }, limits.map((x) => h('li', null, x))) : h('span', { class: 'muted' }, t('key.unlimited'))),
        h('td', { 'data-label': cols[3] },
          h('span', { class: 'sub wrap' }, k.models ? k.models.join(', ') : t('key.allModels')),
          h('span', { class: 'sub' }, k.token_group ? t('key.group', { g: k.token_group }) : t('key.anyToken'))),
        h('td', { 'data-label': cols[4], class: 'num' },
          k.rpm !== null ? line('window', `${t('key.l.window')}: ${ofLimit(live.window_requests, k.rpm)}`) : null,
          line('running', `${t('key.l.running')}: ${ofLimit(live.running, k.concurrency)}`),
          line('images', `${t('key.l.images')}: ${ofLimit(live.images_used, k.image_quota)}`),
          line('videos', `${t('key.l.videos')}: ${ofLimit(live.videos_used, k.video_quota)}`),
          live.period_end ? h('span', { class: 'sub' }, t('key.l.period', { time: fmtTime(live.period_end) })) : null),
        h('td', { 'data-label': cols[5], class: 'num' },
          line('requests', t('key.u.requests', { n: fmtNum(usage.requests || 0) })),
          line('used-images', t('key.u.images', { n: fmtNum(usage.images || 0) })),
          line('used-videos', t('key.u.videos', { n: fmtNum(usage.videos || 0), s: fmtNum(usage.video_seconds || 0) })),
          line('failures', t('key.u.failures', { n: fmtNum(usage.failures || 0) }))),
        h('td', { 'data-label': cols[6] }, fmtTime(k.created_at)),
        h('td', { 'data-label': cols[7] }, h('div', { class: 'row-actions' },
          act(t('key.edit'), () => keyForm(k)),
          act(t('key.usage'), () => usageView(k)),
          k.enabled ? act(t('key.disable'), () => setEnabled(k, false)) : act(t('key.enable'), () => setEnabled(k, true)),
          act(t('key.delete'), () => remove(k), 'danger'))));
    }

    // Create (k null) or edit a key. Limits left empty are unlimited.
    async function keyForm(k) {
      const edit = k !== null;
      const f = {
        name: field({ name: 'name', label: t('key.f.name'), required: true, maxlength: 100, value: edit ? k.name : '', hint: t('key.f.nameHint') }),
      };
      for (const [name, min, max] of LIMITS) {
        f[name] = field({ name, label: t(`key.f.${name}`), type: 'number', min, max, step: 1, inputmode: 'numeric',
          value: edit ? k[name] : '', hint: t('key.f.limitHint', { min: fmtNum(min), max: fmtNum(max) }) });
      }
      f.quota_period = field({ name: 'quota_period', label: t('key.f.quota_period'), type: 'select',
        options: PERIODS.map((p) => [p, t(`key.p.${p}`)]), value: edit ? k.quota_period : 'total' });
      f.expires_at = field({ name: 'expires_at', label: t('key.f.expires_at'), type: 'datetime-local',
        value: edit ? epochToLocal(k.expires_at) : '', hint: t('key.f.expiresHint') });
      f.token_group = field({ name: 'token_group', label: t('key.f.token_group'), maxlength: 64, spellcheck: 'false', autocomplete: 'off',
        value: edit ? k.token_group : '', hint: t('key.f.groupHint') });
      f.enabled = field({ name: 'enabled', label: t('key.f.enabled'), type: 'switch', value: edit ? k.enabled : true });
      const area = formError();
      const modelBox = h('div', { class: 'field-wide', id: 'key-models' }, h('p', { class: 'muted' }, t('common.loading')));
      const form = h('form', { class: 'form-grid', novalidate: true, id: 'key-form' },
        f.name.el, f.rpm.el, f.concurrency.el, f.image_quota.el, f.video_quota.el, f.quota_period.el,
        f.expires_at.el, f.token_group.el, modelBox, f.enabled.el, area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, edit ? t('common.save') : t('key.add'))));
      const d = dialog({ title: edit ? t('key.editTitle', { who: who(k) }) : t('key.addTitle'), body: form, wide: true });
      f.name.input.focus();
      let allow = null;
      const fields = Object.values(f);
      // What the form says, as the API takes it (null: unlimited, never,
      // any, every model); undefined when a number cannot be read. Until
      // the model list is in, the allow-list is what the key has.
      const read = () => {
        const v = { name: f.name.value().trim(), quota_period: f.quota_period.value(), enabled: f.enabled.value() };
        for (const [name] of LIMITS) {
          if (f[name].input.validity.badInput) { f[name].setError(t('key.f.number')); f[name].input.focus(); return undefined; }
          v[name] = f[name].value();
        }
        v.expires_at = localToEpoch(f.expires_at.value());
        v.token_group = f.token_group.value().trim() || null;
        if (allow) v.models = allow.value().length ? allow.value() : null;
        else v.models = edit ? k.models : null;
        return v;
      };
      const initial = edit ? read() : null;
      form.addEventListener('submit', busy(form, async () => {
        clearErrors(fields, area);
        const v = read();
        if (v === undefined) return;
        const body = {};
        for (const [name, value] of Object.entries(v)) {
          if (edit ? JSON.stringify(value) !== JSON.stringify(initial[name]) : value !== null) body[name] = value;
        }
        if (edit && Object.keys(body).length === 0) { toast(t('common.unchanged')); return; }
        let res;
        try {
          res = edit ? await api.put(`/api/keys/${k.id}`, body) : await api.post('/api/keys', body);
        } catch (e) {
          showError(fields, area, e, (msg) => (/^unknown model/.test(msg) ? 'models' : null));
          return;
        }
        d.close();
        toast(t(edit ? 'key.updated' : 'key.created', { who: who(res) }), 'ok');
        if (!edit) showKey(res);
        await load();
      }));
      // The allow-list: a checkbox per model id.
      try {
        const ids = await models();
        allow = checkGroup({ name: 'models', label: t('key.f.models'), hint: t('key.f.modelsHint'),
          options: ids.map((id) => [id, id]), value: edit && k.models ? k.models : [] });
        replace(modelBox, allow.el);
        fields.push(allow);
      } catch (e) {
        replace(modelBox, h('p', { class: 'form-error' }, t('key.f.modelsFailed', { message: errorText(e) })));
      }
    }

    // The new key, shown this once.
    function showKey(k) {
      const done = button(t('key.secretDone'), () => d.close(), { small: true });
      const d = dialog({
        title: t('key.secretTitle', { who: who(k) }),
        wide: true,
        body: [secretBox({ id: 'key-secret', label: t('key.secretLabel'), value: k.key, warning: t('key.secretWarn') }),
          h('div', { class: 'actions' }, done)],
      });
      d.el.querySelector('input').focus();
    }

    async function setEnabled(k, on) {
      if (!on && !await confirm(t('key.confirmDisable', { who: who(k) }), { confirmLabel: t('key.disable') })) return;
      try {
        await api.put(`/api/keys/${k.id}`, { enabled: on });
        toast(t(on ? 'key.enabledMsg' : 'key.disabledMsg', { who: who(k) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
      await load();
    }

    async function remove(k) {
      if (!await confirm(t('key.confirmDelete', { who: who(k) }), { danger: true, confirmLabel: t('key.delete') })) return;
      try {
        await api.del(`/api/keys/${k.id}`);
        toast(t('key.deleted', { who: who(k) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
      await load();
    }

    // One key's usage rows between two UTC days, and their CSV.
    function usageView(k) {
      const from = field({ name: 'from', label: t('key.u.from'), type: 'date', hint: t('key.u.rangeHint') });
      const to = field({ name: 'to', label: t('key.u.to'), type: 'date' });
      const fields = [from, to];
      const area = formError();
      const uc = ['key.u.day', 'key.u.model', 'key.u.requestsCol', 'key.u.imagesCol', 'key.u.videosCol', 'key.u.secondsCol',
        'key.u.failuresCol'].map((x) => t(x));
      const rows = h('tbody', { id: 'key-u-rows' });
      const foot = h('tfoot', { id: 'key-u-total' });
      const csvBtn = button(t('key.u.csv'), () => saveCsv(), { small: true });
      const form = h('form', { class: 'filters', novalidate: true, id: 'key-u-form', 'aria-label': t('key.uTitle', { who: who(k) }) },
        from.el, to.el,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary btn-sm' }, t('key.u.show')), csvBtn));
      const d = dialog({
        title: t('key.uTitle', { who: who(k) }),
        wide: true,
        body: [form, area, h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone', id: 'key-u-table' },
          h('caption', { class: 'visually-hidden' }, t('key.u.caption')),
          h('thead', null, h('tr', null, uc.map((c) => h('th', { scope: 'col' }, c)))),
          rows, foot))],
      });
      d.el.id = 'key-usage';
      const range = () => ({ from: from.value(), to: to.value() });
      const cells = (r) => USAGE.map((c, i) => h('td', { 'data-label': uc[i + 2], class: 'num' }, fmtNum(r[c] || 0)));
      async function show() {
        clearErrors(fields, area);
        let res;
        try {
          res = await api.get(`/api/keys/${k.id}/usage${api.query(range())}`);
        } catch (e) {
          showError(fields, area, e);
          return;
        }
        rows.replaceChildren(...res.data.map((r) => h('tr', { dataset: { day: r.day, model: r.model } },
          h('td', { 'data-label': uc[0] }, r.day),
          h('td', { 'data-label': uc[1], class: r.model ? 'mono' : 'muted' }, r.model || t('key.u.other')),
          cells(r))));
        if (res.data.length === 0) rows.appendChild(h('tr', null, h('td', { colspan: uc.length, class: 'muted' }, t('key.u.none'))));
        replace(foot, h('tr', null, h('th', { scope: 'row', colspan: 2, 'data-label': '' }, t('key.u.total')), cells(res.total)));
        d.el.dataset.loads = String(Number(d.el.dataset.loads || 0) + 1);
      }
      async function saveCsv() {
        clearErrors(fields, area);
        try {
          const r = await api.get(`/api/keys/${k.id}/usage${api.query(Object.assign(range(), { format: 'csv' }))}`, { raw: true });
          const m = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '');
          const name = m ? m[1] : `api-key-${k.id}-usage.csv`;
          download(await r.blob(), name);
          toast(t('key.u.downloaded', { name }), 'ok');
        } catch (e) {
          showError(fields, area, e);
        }
      }
      form.addEventListener('submit', busy(form, show));
      from.input.focus();
      show();
    }

    render();
    const stop = every(LIVE_MS, load);
    return () => { st.gone = true; stop(); };
  },
};
