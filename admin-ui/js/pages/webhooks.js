// Webhooks (docs/webhooks.md): the endpoints the gateway tells when a
// job ends. The list (URL, event types, enabled, created); create and
// edit (URL, the four event types, enabled) with the server's refusal
// next to its field; the signing secret shown once, after a create or a
// rotation, with a copy button; enable, disable, delete; a test event;
// and each endpoint's deliveries, followed live while their dialog is
// open.
import { h, replace } from '../dom.js';
import { t, fmtNum, fmtTime } from '../i18n.js';
import * as api from '../api.js';
import {
  field, checkGroup, formError, showError, clearErrors, busy, toast, errorText, dialog, confirm, badge, button,
  secretBox, every,
} from '../ui.js';

const EVENTS = ['video.completed', 'video.failed', 'image.completed', 'image.failed'];
const STATE_KIND = { pending: 'cooling', delivered: 'active', failed: 'invalid' };
const LIVE_MS = 2000;

function who(w) {
  return `#${w.id}`;
}

export default {
  id: 'webhooks',
  nav: 'nav.webhooks',
  messages: {
    en: {
      'nav.webhooks': 'Webhooks',
      'hook.title': 'Webhooks',
      'hook.lead': 'Receivers told when a video or image job ends, signed as Standard Webhooks and retried for a day.',
      'hook.summary': 'Endpoints: {n}',
      'hook.add': 'Add endpoint',
      'hook.caption': 'Webhook endpoints, oldest first',
      'hook.col.url': 'URL',
      'hook.col.events': 'Events',
      'hook.col.enabled': 'Enabled',
      'hook.col.created': 'Created',
      'hook.on': 'enabled',
      'hook.off': 'disabled',
      'hook.edit': 'Edit',
      'hook.deliveries': 'Deliveries',
      'hook.test': 'Send test',
      'hook.rotate': 'Rotate secret',
      'hook.enable': 'Enable',
      'hook.disable': 'Disable',
      'hook.delete': 'Delete',
      'hook.actionFor': '{action} webhook {who}',
      'hook.addTitle': 'Add a webhook endpoint',
      'hook.editTitle': 'Edit webhook {who}',
      'hook.f.url': 'Receiver URL',
      'hook.f.urlHint': 'http:// or https://, up to 2048 bytes',
      'hook.f.events': 'Event types',
      'hook.f.eventsHint': 'At least one.',
      'hook.f.enabled': 'Enabled',
      'hook.created': 'Webhook {who} created.',
      'hook.updated': 'Webhook {who} updated.',
      'hook.enabledMsg': 'Webhook {who} enabled.',
      'hook.disabledMsg': 'Webhook {who} disabled.',
      'hook.deleted': 'Webhook {who} deleted.',
      'hook.confirmDelete': 'Delete webhook {who} ({url}) and all its deliveries, pending ones included? This cannot be undone.',
      'hook.confirmRotate': 'Make a new signing secret for webhook {who}? Deliveries are signed with it from now on.',
      'hook.rotateBtn': 'Rotate',
      'hook.overlap': 'The current secret keeps signing too for',
      'hook.overlapHint': 'Both signatures are sent meanwhile, so the receiver keeps accepting deliveries until it has the new secret. Choose "not at all" if the secret leaked.',
      'hook.overlap.0': 'not at all: it stops now',
      'hook.overlap.3600': '1 hour',
      'hook.overlap.86400': '1 day',
      'hook.overlap.604800': '7 days',
      'hook.previousUntil': 'previous secret signs until {time}',
      'hook.secretTitle': 'The signing secret of webhook {who}',
      'hook.secretLabel': 'Signing secret',
      'hook.secretWarn': 'This is the only time the secret is shown: copy it now. You will not see it again; if it is lost, rotate it.',
      'hook.secretDone': 'Done',
      'hook.testQueued': 'Test event queued for webhook {who}.',
      'hook.testFailed': 'Webhook {who}: {message}',
      'hook.dTitle': 'Deliveries of webhook {who}',
      'hook.dLead': 'Newest first; followed live while this is open.',
      'hook.dCaption': 'Deliveries to {url}',
      'hook.d.event': 'Event type',
      'hook.d.job': 'Job',
      'hook.d.state': 'State',
      'hook.d.attempts': 'Attempts',
      'hook.d.status': 'Last status',
      'hook.d.error': 'Last error',
      'hook.d.next': 'Next attempt',
      'hook.d.created': 'Created',
      'hook.d.delivered': 'Delivered',
      'hook.d.pending': 'pending',
      'hook.d.deliveredState': 'delivered',
      'hook.d.failed': 'failed',
      'hook.d.count': 'Deliveries: {n} · updated {time}',
      'hook.d.none': 'No delivery yet.',
      'hook.d.test': 'Send test event',
    },
    'zh-CN': {
      'nav.webhooks': 'Webhook',
      'hook.title': 'Webhook',
      'hook.lead': '视频或图片任务结束时通知接收方，按 Standard Webhooks 签名，失败后重试一天。',
      'hook.summary': '共 {n} 个端点',
      'hook.add': '添加端点',
      'hook.caption': 'Webhook 端点，最早的在前',
      'hook.col.url': '地址',
      'hook.col.events': '事件',
      'hook.col.enabled': '启用',
      'hook.col.created': '创建时间',
      'hook.on': '已启用',
      'hook.off': '已禁用',
      'hook.edit': '编辑',
      'hook.deliveries': '投递记录',
      'hook.test': '发送测试',
      'hook.rotate': '轮换密钥',
      'hook.enable': '启用',
      'hook.disable': '禁用',
      'hook.delete': '删除',
      'hook.actionFor': '{action} Webhook {who}',
      'hook.addTitle': '添加 Webhook 端点',
      'hook.editTitle': '编辑 Webhook {who}',
      'hook.f.url': '接收地址',
      'hook.f.urlHint': 'http:// 或 https://，最多 2048 字节',
      'hook.f.events': '事件类型',
      'hook.f.eventsHint': '至少选择一个。',
      'hook.f.enabled': '启用',
      'hook.created': 'Webhook {who} 已创建。',
      'hook.updated': 'Webhook {who} 已更新。',
      'hook.enabledMsg': '已启用 Webhook {who}。',
      'hook.disabledMsg': '已禁用 Webhook {who}。',
      'hook.deleted': '已删除 Webhook {who}。',
      'hook.confirmDelete': '删除 Webhook {who}（{url}）及其所有投递记录（包括待投递的）？此操作无法撤销。',
      'hook.confirmRotate': '为 Webhook {who} 生成新的签名密钥？此后的投递都用它签名。',
      'hook.rotateBtn': '轮换',
      'hook.overlap': '当前密钥继续同时签名的时长',
      'hook.overlapHint': '期间两个签名都会发送，接收方在换上新密钥之前仍能验证通过。若密钥已泄露，请选择“立即停用”。',
      'hook.overlap.0': '立即停用',
      'hook.overlap.3600': '1 小时',
      'hook.overlap.86400': '1 天',
      'hook.overlap.604800': '7 天',
      'hook.previousUntil': '旧密钥签名至 {time}',
      'hook.secretTitle': 'Webhook {who} 的签名密钥',
      'hook.secretLabel': '签名密钥',
      'hook.secretWarn': '密钥只显示这一次，请立即复制。之后将无法再查看；丢失后只能轮换。',
      'hook.secretDone': '完成',
      'hook.testQueued': '已为 Webhook {who} 加入测试事件。',
      'hook.testFailed': 'Webhook {who}：{message}',
      'hook.dTitle': 'Webhook {who} 的投递记录',
      'hook.dLead': '最新的在前；窗口打开时实时刷新。',
      'hook.dCaption': '投递到 {url} 的记录',
      'hook.d.event': '事件类型',
      'hook.d.job': '任务',
      'hook.d.state': '状态',
      'hook.d.attempts': '尝试次数',
      'hook.d.status': '最近状态码',
      'hook.d.error': '最近错误',
      'hook.d.next': '下次尝试',
      'hook.d.created': '创建时间',
      'hook.d.delivered': '送达时间',
      'hook.d.pending': '待投递',
      'hook.d.deliveredState': '已送达',
      'hook.d.failed': '已放弃',
      'hook.d.count': '共 {n} 条投递 · 更新于 {time}',
      'hook.d.none': '暂无投递。',
      'hook.d.test': '发送测试事件',
    },
  },

  mount(box) {
    const st = { rows: [], gone: false, loaded: false };
    const summary = h('p', { class: 'muted', role: 'status', id: 'hook-summary' }, t('common.loading'));
    const tbody = h('tbody', { id: 'hook-rows' });
    const cols = ['hook.col.url', 'hook.col.events', 'hook.col.enabled', 'hook.col.created', 'common.actions'].map((k) => t(k));
    replace(box,
      h('div', { class: 'page-head' }, h('h1', null, t('hook.title')), summary),
      h('p', { class: 'muted' }, t('hook.lead')),
      h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-buttons' },
        button(t('hook.add'), () => hookForm(null), { kind: 'primary', small: true }),
        button(t('common.refresh'), () => load(), { small: true }))),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone', id: 'hook-table' },
        h('caption', { class: 'visually-hidden' }, t('hook.caption')),
        h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))),
        tbody)));

    async function load() {
      let rows;
      try {
        rows = await api.get('/api/webhooks');
      } catch (e) {
        if (!st.gone && e.status !== 401) summary.textContent = errorText(e);
        return;
      }
      if (st.gone) return;
      st.rows = rows;
      st.loaded = true;
      render();
      box.dataset.loads = String(Number(box.dataset.loads || 0) + 1);
    }

    function render() {
      tbody.replaceChildren(...st.rows.map(rowEl));
      if (st.rows.length === 0) {
        tbody.appendChild(h('tr', null, h('td', { colspan: cols.length, class: 'muted' }, st.loaded ? t('common.noRows') : t('common.loading'))));
      }
      summary.textContent = t('hook.summary', { n: fmtNum(st.rows.length) });
    }

    function rowEl(w) {
      const act = (label, fn, kind) => button(label, fn, {
        small: true, kind, ariaLabel: t('hook.actionFor', { action: label, who: who(w) }),
      });
      return h('tr', { dataset: { id: w.id, enabled: String(w.enabled) } },
        h('td', { 'data-label': cols[0] }, h('span', { class: 'mono wrap strong' }, w.url),
          h('span', { class: 'sub' }, who(w))),
        h('td', { 'data-label': cols[1] }, h('ul', { class: 'plain tight' }, w.event_types.map((e) => h('li', { class: 'mono' }, e)))),
        h('td', { 'data-label': cols[2] }, badge(w.enabled ? t('hook.on') : t('hook.off'), w.enabled ? 'active' : 'disabled'),
          w.previous_secret_expires_at
            ? h('span', { class: 'sub' }, t('hook.previousUntil', { time: fmtTime(w.previous_secret_expires_at) })) : null),
        h('td', { 'data-label': cols[3] }, fmtTime(w.created_at),
          w.updated_at && w.updated_at !== w.created_at ? h('span', { class: 'sub' }, fmtTime(w.updated_at)) : null),
        h('td', { 'data-label': cols[4] }, h('div', { class: 'row-actions' },
          act(t('hook.edit'), () => hookForm(w)),
          act(t('hook.deliveries'), () => deliveries(w)),
          act(t('hook.test'), () => sendTest(w)),
          w.enabled ? act(t('hook.disable'), () => setEnabled(w, false)) : act(t('hook.enable'), () => setEnabled(w, true)),
          act(t('hook.rotate'), () => rotate(w)),
          act(t('hook.delete'), () => remove(w), 'danger'))));
    }

    // The secret of a create or a rotation, shown this once.
    function showSecret(w, secret) {
      const done = button(t('hook.secretDone'), () => d.close(), { small: true });
      const d = dialog({
        title: t('hook.secretTitle', { who: who(w) }),
        wide: true,
        body: [secretBox({ id: 'hook-secret', label: t('hook.secretLabel'), value: secret, warning: t('hook.secretWarn') }),
          h('div', { class: 'actions' }, done)],
      });
      d.el.querySelector('input').focus();
    }

    // Create (w null) or edit an endpoint.
    function hookForm(w) {
      const edit = w !== null;
      const url = field({ name: 'url', label: t('hook.f.url'), type: 'url', required: true, value: edit ? w.url : '',
        hint: t('hook.f.urlHint'), spellcheck: 'false', autocomplete: 'off' });
      const events = checkGroup({ name: 'event_types', label: t('hook.f.events'), hint: t('hook.f.eventsHint'),
        options: EVENTS.map((e) => [e, e]), value: edit ? w.event_types : EVENTS });
      const enabled = field({ name: 'enabled', label: t('hook.f.enabled'), type: 'switch', value: edit ? w.enabled : true });
      const fields = [url, events, enabled];
      const area = formError();
      const form = h('form', { class: 'form-grid', novalidate: true, id: 'hook-form' },
        url.el, events.el, enabled.el, area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, edit ? t('common.save') : t('hook.add'))));
      const d = dialog({ title: edit ? t('hook.editTitle', { who: who(w) }) : t('hook.addTitle'), body: form, wide: true });
      const guess = (msg) => (/^unknown event type|^event_types/.test(msg) ? 'event_types' : null);
      form.addEventListener('submit', busy(form, async () => {
        clearErrors(fields, area);
        const body = { url: url.value().trim(), event_types: events.value(), enabled: enabled.value() };
        if (edit) {
          if (body.url === w.url) delete body.url;
          if (body.event_types.join() === w.event_types.join()) delete body.event_types;
          if (body.enabled === w.enabled) delete body.enabled;
          if (Object.keys(body).length === 0) { toast(t('common.unchanged')); return; }
        }
        let res;
        try {
          res = edit ? await api.put(`/api/webhooks/${w.id}`, body) : await api.post('/api/webhooks', body);
        } catch (e) {
          showError(fields, area, e, guess);
          return;
        }
        d.close();
        toast(t(edit ? 'hook.updated' : 'hook.created', { who: who(res) }), 'ok');
        if (res.secret) showSecret(res, res.secret);
        await load();
      }));
      url.input.focus();
    }

    async function setEnabled(w, on) {
      try {
        await api.put(`/api/webhooks/${w.id}`, { enabled: on });
        toast(t(on ? 'hook.enabledMsg' : 'hook.disabledMsg', { who: who(w) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
      await load();
    }

    // A new secret; the old one may keep signing for a while.
    function rotate(w) {
      const overlap = field({ name: 'secret_overlap', label: t('hook.overlap'), type: 'select', hint: t('hook.overlapHint'),
        options: ['86400', '3600', '604800', '0'].map((v) => [v, t(`hook.overlap.${v}`)]), value: '86400' });
      const area = formError();
      const form = h('form', { class: 'form-grid', novalidate: true, id: 'hook-rotate' },
        h('p', null, t('hook.confirmRotate', { who: who(w) })), overlap.el, area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('hook.rotateBtn'))));
      const d = dialog({ title: t('hook.rotate'), body: form });
      form.addEventListener('submit', busy(form, async () => {
        clearErrors([overlap], area);
        let res;
        try {
          res = await api.put(`/api/webhooks/${w.id}`, { rotate_secret: true, secret_overlap: Number(overlap.value()) });
        } catch (e) {
          showError([overlap], area, e);
          return;
        }
        d.close();
        showSecret(res, res.secret);
        await load();
      }));
      overlap.input.focus();
    }

    async function remove(w) {
      if (!await confirm(t('hook.confirmDelete', { who: who(w), url: w.url }), { danger: true, confirmLabel: t('hook.delete') })) return;
      try {
        await api.del(`/api/webhooks/${w.id}`);
        toast(t('hook.deleted', { who: who(w) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
      await load();
    }

    // Resolves true when the event was queued; says why not otherwise.
    async function sendTest(w, out) {
      try {
        await api.post(`/api/webhooks/${w.id}/test`);
        const msg = t('hook.testQueued', { who: who(w) });
        if (out) { out.textContent = msg; out.classList.remove('form-error'); out.hidden = false; } else toast(msg, 'ok');
        return true;
      } catch (e) {
        const msg = t('hook.testFailed', { who: who(w), message: errorText(e) });
        if (out) { out.textContent = msg; out.classList.add('form-error'); out.hidden = false; } else toast(msg, 'error');
        return false;
      }
    }

    // The deliveries of one endpoint, followed while the dialog is open.
    function deliveries(w) {
      const dc = ['hook.d.event', 'hook.d.job', 'hook.d.state', 'hook.d.attempts', 'hook.d.status', 'hook.d.error',
        'hook.d.next', 'hook.d.created', 'hook.d.delivered'].map((k) => t(k));
      const rows = h('tbody', { id: 'hook-d-rows' });
      const status = h('p', { class: 'muted', role: 'status', id: 'hook-d-summary' }, t('common.loading'));
      const out = h('p', { class: 'notice', role: 'status', id: 'hook-d-test', hidden: true });
      let last = null;
      let stop = null;
      const kick = () => { last = null; if (stop) stop(); stop = every(LIVE_MS, refresh); };
      const d = dialog({
        title: t('hook.dTitle', { who: who(w) }),
        wide: true,
        onClose: () => { if (stop) stop(); },
        body: [
          h('p', { class: 'muted' }, t('hook.dLead'), ' ', h('span', { class: 'mono wrap' }, w.url)),
          h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-buttons' },
            button(t('hook.d.test'), async () => { if (await sendTest(w, out)) kick(); }, { small: true, kind: 'primary' }),
            button(t('common.refresh'), () => kick(), { small: true }))),
          out, status,
          h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone', id: 'hook-d-table' },
            h('caption', { class: 'visually-hidden' }, t('hook.dCaption', { url: w.url })),
            h('thead', null, h('tr', null, dc.map((c) => h('th', { scope: 'col' }, c)))),
            rows)),
        ],
      });
      d.el.id = 'hook-deliveries';
      const stateLabel = (s) => ({ pending: t('hook.d.pending'), delivered: t('hook.d.deliveredState'), failed: t('hook.d.failed') }[s] || s);
      async function refresh() {
        let list;
        try {
          list = await api.get(`/api/webhooks/${w.id}/deliveries${api.query({ limit: 100 })}`);
        } catch (e) {
          status.textContent = errorText(e);
          status.classList.add('form-error');
          return;
        }
        status.classList.remove('form-error');
        status.textContent = t('hook.d.count', { n: fmtNum(list.length), time: fmtTime(new Date().toISOString()) });
        const text = JSON.stringify(list);
        // Nothing new: the table (and the focus in it) stays.
        if (text === last) return;
        last = text;
        rows.replaceChildren(...list.map((x) => h('tr', { dataset: { id: x.id, state: x.state } },
          h('td', { 'data-label': dc[0], class: 'mono' }, x.event_type),
          h('td', { 'data-label': dc[1], class: 'mono' },
            x.job_id ? h('a', { href: `#/jobs/${encodeURIComponent(x.job_id)}`, onclick: () => d.close() }, x.job_id) : '–'),
          h('td', { 'data-label': dc[2] }, badge(stateLabel(x.state), STATE_KIND[x.state] || 'neutral')),
          h('td', { 'data-label': dc[3], class: 'num' }, fmtNum(x.attempts)),
          h('td', { 'data-label': dc[4], class: 'num' }, x.last_status === null ? '–' : String(x.last_status)),
          h('td', { 'data-label': dc[5], class: 'wrap' }, x.last_error || '–'),
          h('td', { 'data-label': dc[6] }, fmtTime(x.next_attempt_at)),
          h('td', { 'data-label': dc[7] }, fmtTime(x.created_at)),
          h('td', { 'data-label': dc[8] }, fmtTime(x.delivered_at)))));
        if (list.length === 0) rows.appendChild(h('tr', null, h('td', { colspan: dc.length, class: 'muted' }, t('hook.d.none'))));
        d.el.dataset.loads = String(Number(d.el.dataset.loads || 0) + 1);
      }
      kick();
    }

    render();
    load();
    return () => { st.gone = true; };
  },
};
