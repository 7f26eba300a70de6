// Characters (docs/characters.md): the Sora characters the pool's
// accounts made. The table (avatar, username, display name, token,
// visibility, state, temporary, created) a page at a time from the
// server, filtered by token, state and a search of the username or
// display name; a dialog with every field and an edit of the display
// name, the instruction sets and the visibility (sent to Sora first by
// the server; its refusal shown next to the field, or on the form);
// delete, after a confirmation, on Sora and here or only here.
// `#/characters/<token id>` opens the page filtered to one token.
import { h, replace } from '../dom.js';
import { t, fmtNum, fmtTime } from '../i18n.js';
import * as api from '../api.js';
import {
  field, formError, showError, clearErrors, busy, toast, errorText, dialog, badge, button, sameOrigin,
} from '../ui.js';

const PAGE = 50;
const STATES = ['processing', 'ready', 'failed', 'deleting', 'deleted'];
const STATE_KIND = { processing: 'cooling', ready: 'active', failed: 'invalid', deleting: 'cooling', deleted: 'disabled' };

const isHttp = (u) => typeof u === 'string' && /^https?:\/\//i.test(u);
const who = (c) => (c.username ? `@${c.username}` : c.id);

// The avatar: an image only when the daemon serves it (the page's
// policy loads nothing from elsewhere), a link for another http(s) URL,
// nothing otherwise.
function avatar(c) {
  if (!isHttp(c.profile_url)) return h('span', { class: 'muted' }, '–');
  if (sameOrigin(c.profile_url)) {
    return h('img', { class: 'avatar', src: c.profile_url, alt: t('char.avatarOf', { who: who(c) }), width: 32, height: 32 });
  }
  return h('a', { href: c.profile_url, target: '_blank', rel: 'noopener noreferrer' }, t('char.avatarLink'));
}

export default {
  id: 'characters',
  nav: 'nav.characters',
  messages: {
    en: {
      'nav.characters': 'Characters',
      'char.title': 'Characters',
      'char.lead': 'Sora characters the accounts of the pool made. A change or a delete goes to Sora first, with the account that made the character.',
      'char.summary': '{shown} of {total} characters',
      'char.caption': 'Characters, newest first',
      'char.col.avatar': 'Avatar',
      'char.col.username': 'Username',
      'char.col.display': 'Display name',
      'char.col.token': 'Token',
      'char.col.visibility': 'Visibility',
      'char.col.state': 'State',
      'char.col.temporary': 'Temporary',
      'char.col.created': 'Created',
      'char.filters': 'Filter characters',
      'char.f.token': 'Token id',
      'char.f.state': 'State',
      'char.f.search': 'Search username or display name',
      'char.prev': 'Previous page',
      'char.next': 'Next page',
      'char.avatarOf': 'Avatar of {who}',
      'char.avatarLink': 'avatar',
      'char.public': 'public',
      'char.private': 'private',
      'char.state.processing': 'processing',
      'char.state.ready': 'ready',
      'char.state.failed': 'failed',
      'char.state.deleting': 'deleting',
      'char.state.deleted': 'deleted',
      'char.open': 'Details',
      'char.delete': 'Delete',
      'char.actionFor': '{action} character {who}',
      'char.dTitle': 'Character {who}',
      'char.d.id': 'Id',
      'char.d.cameo': 'Cameo id',
      'char.d.character': 'Character id',
      'char.d.profile': 'Profile image',
      'char.d.owner': 'API key',
      'char.d.job': 'Job',
      'char.d.error': 'Error',
      'char.d.updated': 'Updated',
      'char.e.display': 'Display name',
      'char.e.instruction': 'Instruction set',
      'char.e.safety': 'Safety instruction set',
      'char.e.emptyHint': 'Empty clears it.',
      'char.e.visibility': 'Visibility',
      'char.e.notReady': 'Only a ready character can be changed.',
      'char.updated': 'Character {who} updated.',
      'char.confirmDelete': 'Delete character {who}? It is deleted on Sora with its account, then here. This cannot be undone.',
      'char.localOnly': 'Only remove the record here (leave the character on Sora)',
      'char.deleted': 'Character {who} deleted.',
      'char.badToken': 'The token id must be a positive whole number.',
    },
    'zh-CN': {
      'nav.characters': '角色',
      'char.title': '角色',
      'char.lead': '号池中各账号创建的 Sora 角色。修改或删除会先用创建该角色的账号提交到 Sora。',
      'char.summary': '显示 {shown} / 共 {total} 个角色',
      'char.caption': '角色，最新的在前',
      'char.col.avatar': '头像',
      'char.col.username': '用户名',
      'char.col.display': '显示名称',
      'char.col.token': 'Token',
      'char.col.visibility': '可见性',
      'char.col.state': '状态',
      'char.col.temporary': '临时',
      'char.col.created': '创建时间',
      'char.filters': '筛选角色',
      'char.f.token': 'Token ID',
      'char.f.state': '状态',
      'char.f.search': '搜索用户名或显示名称',
      'char.prev': '上一页',
      'char.next': '下一页',
      'char.avatarOf': '{who} 的头像',
      'char.avatarLink': '头像',
      'char.public': '公开',
      'char.private': '私有',
      'char.state.processing': '处理中',
      'char.state.ready': '就绪',
      'char.state.failed': '失败',
      'char.state.deleting': '删除中',
      'char.state.deleted': '已删除',
      'char.open': '详情',
      'char.delete': '删除',
      'char.actionFor': '{action}角色 {who}',
      'char.dTitle': '角色 {who}',
      'char.d.id': 'ID',
      'char.d.cameo': 'Cameo ID',
      'char.d.character': '角色 ID',
      'char.d.profile': '头像地址',
      'char.d.owner': 'API 密钥',
      'char.d.job': '任务',
      'char.d.error': '错误',
      'char.d.updated': '更新时间',
      'char.e.display': '显示名称',
      'char.e.instruction': '指令',
      'char.e.safety': '安全指令',
      'char.e.emptyHint': '留空即清除。',
      'char.e.visibility': '可见性',
      'char.e.notReady': '只有就绪的角色可以修改。',
      'char.updated': '角色 {who} 已更新。',
      'char.confirmDelete': '删除角色 {who}？会先用其账号在 Sora 上删除，再删除本地记录。此操作无法撤销。',
      'char.localOnly': '只删除本地记录（保留 Sora 上的角色）',
      'char.deleted': '已删除角色 {who}。',
      'char.badToken': 'Token ID 必须是正整数。',
    },
  },

  mount(box, app) {
    const fromRoute = decodeURIComponent(((app && app.route) || '').split('/')[2] || '');
    const st = { rows: [], total: 0, offset: 0, gone: false, loaded: false };
    const summary = h('p', { class: 'muted', role: 'status', id: 'char-summary' }, t('common.loading'));
    const fToken = field({ name: 'token_id', label: t('char.f.token'), type: 'number', min: 1, step: 1, inputmode: 'numeric',
      value: /^[1-9]\d*$/.test(fromRoute) ? fromRoute : '' });
    const fState = field({ name: 'state', label: t('char.f.state'), type: 'select',
      options: [['', t('common.any')], ...STATES.map((s) => [s, t(`char.state.${s}`)])] });
    const fSearch = field({ name: 'search', label: t('char.f.search'), type: 'search', maxlength: 64, autocomplete: 'off' });
    const filterFields = [fToken, fState, fSearch];
    const filterErr = formError();
    const filters = h('form', { class: 'filters', id: 'char-filters', 'aria-label': t('char.filters'), novalidate: true },
      fToken.el, fState.el, fSearch.el,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary btn-sm' }, t('common.apply'))),
      filterErr);
    const prev = button(t('char.prev'), () => { st.offset = Math.max(0, st.offset - PAGE); load(); }, { small: true });
    const next = button(t('char.next'), () => { st.offset += PAGE; load(); }, { small: true });
    prev.id = 'char-prev';
    next.id = 'char-next';
    const tbody = h('tbody', { id: 'char-rows' });
    const cols = ['char.col.avatar', 'char.col.username', 'char.col.display', 'char.col.token', 'char.col.visibility',
      'char.col.state', 'char.col.temporary', 'char.col.created', 'common.actions'].map((k) => t(k));
    replace(box,
      h('div', { class: 'page-head' }, h('h1', null, t('char.title')), summary),
      h('p', { class: 'muted' }, t('char.lead')),
      filters,
      h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-buttons' },
        button(t('common.refresh'), () => load(), { small: true }), prev, next)),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone', id: 'char-table' },
        h('caption', { class: 'visually-hidden' }, t('char.caption')),
        h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))),
        tbody)));

    filters.addEventListener('submit', (ev) => {
      ev.preventDefault();
      st.offset = 0;
      load();
    });

    function params() {
      const q = { limit: PAGE, offset: st.offset };
      const tok = fToken.input.value.trim();
      if (tok !== '') q.token_id = tok;
      if (fState.value()) q.state = fState.value();
      if (fSearch.value().trim()) q.search = fSearch.value().trim();
      return q;
    }

    async function load() {
      clearErrors(filterFields, filterErr);
      const tok = fToken.input.value.trim();
      if (tok !== '' && !/^[1-9]\d*$/.test(tok)) {
        fToken.setError(t('char.badToken'));
        return;
      }
      let res;
      try {
        res = await api.get(`/api/characters${api.query(params())}`);
      } catch (e) {
        if (st.gone || e.status === 401) return;
        showError(filterFields, filterErr, e);
        return;
      }
      if (st.gone) return;
      st.rows = res.characters;
      st.total = res.total;
      st.loaded = true;
      render();
      box.dataset.loads = String(Number(box.dataset.loads || 0) + 1);
    }

    function render() {
      tbody.replaceChildren(...st.rows.map(rowEl));
      if (st.rows.length === 0) {
        tbody.appendChild(h('tr', null, h('td', { colspan: cols.length, class: 'muted' }, st.loaded ? t('common.noRows') : t('common.loading'))));
      }
      summary.textContent = t('char.summary', { shown: fmtNum(st.rows.length), total: fmtNum(st.total) });
      prev.disabled = st.offset === 0;
      next.disabled = st.offset + st.rows.length >= st.total;
    }

    const visLabel = (v) => (v === 'public' ? t('char.public') : t('char.private'));
    const stateLabel = (s) => (STATES.includes(s) ? t(`char.state.${s}`) : String(s));

    function rowEl(c) {
      const act = (label, fn, kind) => button(label, fn, {
        small: true, kind, ariaLabel: t('char.actionFor', { action: label, who: who(c) }),
      });
      return h('tr', { dataset: { id: c.id, state: c.state } },
        h('td', { 'data-label': cols[0] }, avatar(c)),
        h('td', { 'data-label': cols[1] }, h('span', { class: 'mono strong' }, c.username ? `@${c.username}` : '–'),
          h('span', { class: 'sub mono' }, c.id)),
        h('td', { 'data-label': cols[2], class: 'wrap' }, c.display_name || '–'),
        h('td', { 'data-label': cols[3], class: 'num' }, `#${c.token_id}`),
        h('td', { 'data-label': cols[4] }, badge(visLabel(c.visibility), c.visibility === 'public' ? 'neutral' : 'disabled')),
        h('td', { 'data-label': cols[5] }, badge(stateLabel(c.state), STATE_KIND[c.state] || 'neutral'),
          c.error ? h('span', { class: 'sub wrap' }, c.error) : null),
        h('td', { 'data-label': cols[6] }, c.temporary ? t('common.yes') : t('common.no')),
        h('td', { 'data-label': cols[7] }, fmtTime(c.created_at)),
        h('td', { 'data-label': cols[8] }, h('div', { class: 'row-actions' },
          act(t('char.open'), () => details(c)),
          act(t('char.delete'), () => remove(c), 'danger'))));
    }

    // Every field, and the form that changes what Sora lets change.
    function details(c) {
      const dl = (label, value) => [h('dt', null, label), h('dd', { class: 'mono wrap' }, value === null || value === undefined || value === '' ? '–' : String(value))];
      const facts = h('dl', { class: 'details' },
        dl(t('char.d.id'), c.id), dl(t('char.d.cameo'), c.cameo_id), dl(t('char.d.character'), c.character_id),
        dl(t('char.col.token'), `#${c.token_id}`), dl(t('char.col.state'), stateLabel(c.state)),
        dl(t('char.d.profile'), c.profile_url), dl(t('char.d.owner'), c.owner), dl(t('char.d.job'), c.job_id),
        dl(t('char.d.error'), c.error), dl(t('char.col.created'), fmtTime(c.created_at)),
        dl(t('char.d.updated'), fmtTime(c.updated_at)));
      const display = field({ name: 'display_name', label: t('char.e.display'), value: c.display_name || '', maxlength: 256 });
      const ins = field({ name: 'instruction_set', label: t('char.e.instruction'), type: 'textarea', rows: 3,
        value: c.instruction_set, hint: t('char.e.emptyHint'), wide: true });
      const safety = field({ name: 'safety_instruction_set', label: t('char.e.safety'), type: 'textarea', rows: 3,
        value: c.safety_instruction_set, hint: t('char.e.emptyHint'), wide: true });
      const vis = field({ name: 'visibility', label: t('char.e.visibility'), type: 'select', value: c.visibility,
        options: [['private', t('char.private')], ['public', t('char.public')]] });
      const fields = [display, ins, safety, vis];
      const area = formError();
      const ready = c.state === 'ready';
      const form = h('form', { class: 'form-grid', novalidate: true, id: 'char-form' },
        display.el, vis.el, ins.el, safety.el, area,
        ready ? null : h('p', { class: 'notice' }, t('char.e.notReady')),
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary', disabled: !ready }, t('common.save'))));
      const d = dialog({ title: t('char.dTitle', { who: who(c) }), body: [facts, form], wide: true });
      d.el.id = 'char-dialog';
      const text = (v) => (v === '' ? null : v);
      form.addEventListener('submit', busy(form, async () => {
        clearErrors(fields, area);
        const body = {};
        if (display.value() !== (c.display_name || '')) body.display_name = display.value();
        if (text(ins.value()) !== c.instruction_set) body.instruction_set = text(ins.value());
        if (text(safety.value()) !== c.safety_instruction_set) body.safety_instruction_set = text(safety.value());
        if (vis.value() !== c.visibility) body.visibility = vis.value();
        if (Object.keys(body).length === 0) { toast(t('common.unchanged')); return; }
        let res;
        try {
          res = await api.post(`/api/characters/${encodeURIComponent(c.id)}/update`, body);
        } catch (e) {
          showError(fields, area, e);
          return;
        }
        d.close();
        toast(t('char.updated', { who: who(res.character) }), 'ok');
        await load();
      }));
      display.input.focus();
    }

    function remove(c) {
      const local = field({ name: 'local_only', label: t('char.localOnly'), type: 'checkbox', value: false });
      const area = formError();
      const no = button(t('common.cancel'), () => d.close());
      const yes = button(t('char.delete'), async () => {
        yes.disabled = true;
        area.hidden = true;
        try {
          await api.del(`/api/characters/${encodeURIComponent(c.id)}${local.value() ? api.query({ local_only: 'true' }) : ''}`);
        } catch (e) {
          area.textContent = errorText(e);
          area.hidden = false;
          yes.disabled = false;
          return;
        }
        d.close();
        toast(t('char.deleted', { who: who(c) }), 'ok');
        await load();
      }, { kind: 'danger' });
      const d = dialog({
        title: t('common.confirmTitle'),
        body: [h('p', null, t('char.confirmDelete', { who: who(c) })), local.el, area, h('div', { class: 'actions' }, no, yes)],
      });
      d.el.id = 'char-delete';
      yes.focus();
    }

    render();
    load();
    return () => { st.gone = true; };
  },
};
