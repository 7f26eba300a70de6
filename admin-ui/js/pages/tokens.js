// The account pool: every token with its state (reason, cooldown), plan,
// Sora 2 entitlement and quota, image and video switches, limits and jobs
// in flight, counters, expiry, proxy, remark and token group (API keys
// with a token_group use only its tokens). The whole list is loaded
// once and kept in memory; search, the state filter and sorting work on
// it, and only one page of rows is ever in the document, so 10,000 tokens
// stay fast. Actions: add (with the ST/RT converters), edit, delete,
// enable, disable, test, Sora 2 activation; import and export; batch add
// through POST /api/tokens/batch; batch test, enable, disable and delete
// of the selected rows and delete every invalid token, each one request
// to POST /api/tokens/batch/{action} answered per id; AT auto-refresh.
import { h, replace, uid } from '../dom.js';
import { t, fmtNum, fmtTime, lang } from '../i18n.js';
import * as api from '../api.js';
import {
  field, formError, showError, clearErrors, busy, toast, errorText, dialog, confirm, progressDialog,
  badge, button, download,
} from '../ui.js';

const STATES = ['active', 'cooling', 'disabled', 'invalid', 'expired'];
const SIZES = [25, 50, 100, 200];
// Most ids one batch request takes (the server's bounds).
const BATCH_IDS = { enable: 10000, disable: 10000, delete: 10000, test: 1000 };

const SORTS = {
  id: (r) => r.id,
  email: (r) => (r.email || '').toLowerCase(),
  state: (r) => STATES.indexOf(r.state),
  plan: (r) => r.plan_type || '',
  sora2: (r) => (r.sora2_remaining_count === null || r.sora2_remaining_count === undefined ? -1 : r.sora2_remaining_count),
  errors: (r) => r.error_count || 0,
  uses: (r) => r.use_count || 0,
  expiry: (r) => (r.expiry_time ? Date.parse(r.expiry_time) : Infinity),
  remark: (r) => (r.remark || '').toLowerCase(),
  group: (r) => r.group || '',
};

// A search string per row, made once per load.
function searchText(r) {
  return [r.id, r.email, r.name, r.username, r.remark, r.proxy_url, r.plan_title, r.plan_type,
    r.sora2_invite_code, r.state, r.state_reason, r.client_id, r.group].filter((x) => x !== null && x !== undefined)
    .join(' ').toLowerCase();
}

function limitText(inflight, limit) {
  return `${fmtNum(inflight || 0)} / ${limit > 0 ? fmtNum(limit) : '∞'}`;
}

function expiryClass(iso) {
  if (!iso) return null;
  const left = Date.parse(iso) - Date.now();
  if (left <= 0) return 'bad';
  if (left < 7 * 86400000) return 'warn';
  return null;
}

function who(r) {
  return r.email ? `#${r.id} ${r.email}` : `#${r.id}`;
}

export default {
  id: 'tokens',
  nav: 'nav.tokens',
  messages: {
    en: {
      'nav.tokens': 'Tokens',
      'tok.title': 'Tokens',
      'tok.summary': '{shown} of {total} tokens',
      'tok.search': 'Search',
      'tok.searchHint': 'e-mail, name, remark, proxy, plan, group, id',
      'tok.stateFilter': 'State',
      'tok.allStates': 'All states',
      'tok.pageSize': 'Rows per page',
      'tok.add': 'Add token',
      'tok.batchAdd': 'Batch add',
      'tok.import': 'Import',
      'tok.export': 'Export',
      'tok.deleteInvalid': 'Delete invalid ({n})',
      'tok.autoRefresh': 'AT auto-refresh',
      'tok.autoRefreshHint': 'Refresh access tokens with their ST or RT before they expire.',
      'tok.autoRefreshOn': 'AT auto-refresh enabled.',
      'tok.autoRefreshOff': 'AT auto-refresh disabled.',
      'tok.caption': 'The account pool, sorted by {key}',
      'tok.selectPage': 'Select every token on this page',
      'tok.selectRow': 'Select token {who}',
      'tok.selected': '{n} selected',
      'tok.selectAll': 'Select all {n} matching',
      'tok.clearSel': 'Clear selection',
      'tok.testSel': 'Test',
      'tok.enableSel': 'Enable',
      'tok.disableSel': 'Disable',
      'tok.deleteSel': 'Delete',
      'tok.col.id': 'ID',
      'tok.col.account': 'Account',
      'tok.col.state': 'State',
      'tok.col.plan': 'Plan',
      'tok.col.sora2': 'Sora 2',
      'tok.col.images': 'Images',
      'tok.col.limits': 'Images and videos',
      'tok.col.videos': 'Videos',
      'tok.col.counters': 'Counters',
      'tok.col.expiry': 'Expires',
      'tok.col.proxy': 'Proxy',
      'tok.col.remark': 'Remark',
      'tok.col.group': 'Group',
      'tok.noGroup': 'none',
      'tok.f.group': 'Token group',
      'tok.f.groupHint': 'API keys with this token group use only tokens of it (A-Z a-z 0-9 . _ -, up to 64); empty: no group',
      'tok.sortBy': 'Sort by {col}',
      'tok.since': 'since {time}',
      'tok.until': 'until {time}',
      'tok.sora2.yes': 'supported',
      'tok.sora2.no': 'not supported',
      'tok.sora2.unknown': 'unknown',
      'tok.sora2.invite': 'invite {code} ({used}/{total} used)',
      'tok.sora2.left': '{n} videos left',
      'tok.sora2.leftUnknown': 'quota unknown',
      'tok.enabled': 'on',
      'tok.disabledKind': 'off',
      'tok.inflight': 'running now / at most',
      'tok.today': 'today',
      'tok.countImages': 'images {today} / {total}',
      'tok.countVideos': 'videos {today} / {total}',
      'tok.countErrors': 'errors {today} / {total} ({run} in a row)',
      'tok.uses': '{n} uses, last {time}',
      'tok.globalProxy': 'global',
      'tok.pager': 'Pages',
      'tok.prev': 'Previous',
      'tok.next': 'Next',
      'tok.pageOf': 'Page {page} of {pages}',
      'tok.test': 'Test',
      'tok.edit': 'Edit',
      'tok.enable': 'Enable',
      'tok.disable': 'Disable',
      'tok.activate': 'Sora 2',
      'tok.delete': 'Delete',
      'tok.actionFor': '{action} token {who}',
      'tok.characters': 'Characters',
      'tok.testOk': '{who}: the token is valid.',
      'tok.testFailed': '{who}: {message}',
      'tok.enabledMsg': '{who} enabled.',
      'tok.disabledMsg': '{who} disabled.',
      'tok.deleted': '{who} deleted.',
      'tok.confirmDelete': 'Delete token {who}? This cannot be undone.',
      'tok.confirmDeleteN': 'Delete {n} tokens? This cannot be undone.',
      'tok.confirmDisableN': 'Disable {n} tokens?',
      'tok.confirmDeleteInvalid': 'Delete the {n} invalid tokens? This cannot be undone.',
      'tok.noInvalid': 'No token is invalid.',
      'tok.addTitle': 'Add a token',
      'tok.editTitle': 'Edit token {who}',
      'tok.f.token': 'Access token (AT)',
      'tok.f.tokenEdit': 'New access token (empty: keep the current one)',
      'tok.f.st': 'Session token (ST)',
      'tok.f.rt': 'Refresh token (RT)',
      'tok.f.secretKeep': 'empty: keep the stored one',
      'tok.f.client': 'Client ID',
      'tok.f.clientHint': 'for the RT exchange; empty: the default',
      'tok.f.proxy': 'Proxy URL',
      'tok.f.proxyHint': 'this token only, e.g. socks5://127.0.0.1:1080; empty: the global proxy',
      'tok.f.remark': 'Remark',
      'tok.f.image': 'Images enabled',
      'tok.f.imageLimit': 'Image jobs at once',
      'tok.f.video': 'Videos enabled',
      'tok.f.videoLimit': 'Video jobs at once',
      'tok.f.limitHint': '-1 or 0: unlimited',
      'tok.st2at': 'ST → AT',
      'tok.rt2at': 'RT → AT',
      'tok.converted': 'Converted: {email}, expires {expires}.',
      'tok.rotated': 'Converted; the refresh token was rotated and the new one is filled in.',
      'tok.added': 'Token added (id {id}).',
      'tok.updated': 'Token {who} updated.',
      'tok.activateTitle': 'Activate Sora 2 for {who}',
      'tok.inviteCode': 'Invite code',
      'tok.activateBtn': 'Activate',
      'tok.activated': '{who}: Sora 2 activated.',
      'tok.batchTitle': 'Batch add',
      'tok.batchKind': 'Each line is',
      'tok.kind.at': 'an access token (AT)',
      'tok.kind.st': 'a session token (ST)',
      'tok.kind.rt': 'a refresh token (RT)',
      'tok.batchLines': 'Tokens, one per line',
      'tok.batchHint': 'Up to 1,000 lines; empty lines are skipped.',
      'tok.batchTooMany': 'At most 1,000 lines at a time ({n} given).',
      'tok.batchNone': 'Paste at least one token.',
      'tok.batchSubmit': 'Add them',
      'tok.batchCaption': 'One result per line',
      'tok.r.line': 'Line',
      'tok.r.outcome': 'Outcome',
      'tok.r.email': 'E-mail',
      'tok.r.id': 'Token',
      'tok.r.detail': 'Detail',
      'tok.r.added': 'added',
      'tok.r.duplicate': 'duplicate',
      'tok.r.failed': 'failed',
      'tok.importTitle': 'Import tokens',
      'tok.importFile': 'JSON file (an exported list)',
      'tok.importHint': 'Tokens are matched by e-mail: an existing one is updated, a new one added.',
      'tok.importSubmit': 'Import',
      'tok.importBad': 'The file must hold a non-empty JSON array of tokens.',
      'tok.importNoFile': 'Choose a file.',
      'tok.exported': 'Exported {n} tokens.',
      'tok.batchTest': 'Testing {n} tokens',
      'tok.batchEnable': 'Enabling {n} tokens',
      'tok.batchDisable': 'Disabling {n} tokens',
      'tok.batchDelete': 'Deleting {n} tokens',
    },
    'zh-CN': {
      'nav.tokens': 'Token 管理',
      'tok.title': 'Token 管理',
      'tok.summary': '显示 {shown} / 共 {total} 个 Token',
      'tok.search': '搜索',
      'tok.searchHint': '邮箱、名称、备注、代理、套餐、分组、ID',
      'tok.stateFilter': '状态',
      'tok.allStates': '全部状态',
      'tok.pageSize': '每页行数',
      'tok.add': '添加 Token',
      'tok.batchAdd': '批量添加',
      'tok.import': '导入',
      'tok.export': '导出',
      'tok.deleteInvalid': '删除无效 Token（{n}）',
      'tok.autoRefresh': '自动刷新 AT',
      'tok.autoRefreshHint': '在 AT 过期前用 ST 或 RT 自动刷新。',
      'tok.autoRefreshOn': '已开启自动刷新 AT。',
      'tok.autoRefreshOff': '已关闭自动刷新 AT。',
      'tok.caption': '账号池，按 {key} 排序',
      'tok.selectPage': '选择本页所有 Token',
      'tok.selectRow': '选择 Token {who}',
      'tok.selected': '已选 {n} 个',
      'tok.selectAll': '选择全部 {n} 个匹配项',
      'tok.clearSel': '取消选择',
      'tok.testSel': '测试',
      'tok.enableSel': '启用',
      'tok.disableSel': '禁用',
      'tok.deleteSel': '删除',
      'tok.col.id': 'ID',
      'tok.col.account': '账号',
      'tok.col.state': '状态',
      'tok.col.plan': '套餐',
      'tok.col.sora2': 'Sora 2',
      'tok.col.images': '图片',
      'tok.col.limits': '图片与视频',
      'tok.col.videos': '视频',
      'tok.col.counters': '计数',
      'tok.col.expiry': '过期时间',
      'tok.col.proxy': '代理',
      'tok.col.remark': '备注',
      'tok.col.group': '分组',
      'tok.noGroup': '无',
      'tok.f.group': 'Token 分组',
      'tok.f.groupHint': '设置了该 Token 分组的 API Key 只使用该组的 Token（A-Z a-z 0-9 . _ -，最多 64 个字符）；留空：不分组',
      'tok.sortBy': '按{col}排序',
      'tok.since': '自 {time}',
      'tok.until': '至 {time}',
      'tok.sora2.yes': '支持',
      'tok.sora2.no': '不支持',
      'tok.sora2.unknown': '未知',
      'tok.sora2.invite': '邀请码 {code}（已用 {used}/{total}）',
      'tok.sora2.left': '剩余 {n} 个视频',
      'tok.sora2.leftUnknown': '额度未知',
      'tok.enabled': '开',
      'tok.disabledKind': '关',
      'tok.inflight': '正在运行 / 上限',
      'tok.today': '今日',
      'tok.countImages': '图片 {today} / {total}',
      'tok.countVideos': '视频 {today} / {total}',
      'tok.countErrors': '错误 {today} / {total}（连续 {run}）',
      'tok.uses': '使用 {n} 次，最近 {time}',
      'tok.globalProxy': '全局',
      'tok.pager': '分页',
      'tok.prev': '上一页',
      'tok.next': '下一页',
      'tok.pageOf': '第 {page} / {pages} 页',
      'tok.test': '测试',
      'tok.edit': '编辑',
      'tok.enable': '启用',
      'tok.disable': '禁用',
      'tok.activate': 'Sora 2',
      'tok.delete': '删除',
      'tok.actionFor': '{action} Token {who}',
      'tok.characters': '角色',
      'tok.testOk': '{who}：Token 有效。',
      'tok.testFailed': '{who}：{message}',
      'tok.enabledMsg': '已启用 {who}。',
      'tok.disabledMsg': '已禁用 {who}。',
      'tok.deleted': '已删除 {who}。',
      'tok.confirmDelete': '删除 Token {who}？此操作无法撤销。',
      'tok.confirmDeleteN': '删除 {n} 个 Token？此操作无法撤销。',
      'tok.confirmDisableN': '禁用 {n} 个 Token？',
      'tok.confirmDeleteInvalid': '删除 {n} 个无效 Token？此操作无法撤销。',
      'tok.noInvalid': '没有无效的 Token。',
      'tok.addTitle': '添加 Token',
      'tok.editTitle': '编辑 Token {who}',
      'tok.f.token': 'Access Token（AT）',
      'tok.f.tokenEdit': '新的 Access Token（留空保持不变）',
      'tok.f.st': 'Session Token（ST）',
      'tok.f.rt': 'Refresh Token（RT）',
      'tok.f.secretKeep': '留空保持已保存的值',
      'tok.f.client': 'Client ID',
      'tok.f.clientHint': '用于 RT 转换；留空使用默认值',
      'tok.f.proxy': '代理地址',
      'tok.f.proxyHint': '仅用于此 Token，例如 socks5://127.0.0.1:1080；留空使用全局代理',
      'tok.f.remark': '备注',
      'tok.f.image': '启用图片',
      'tok.f.imageLimit': '图片并发数',
      'tok.f.video': '启用视频',
      'tok.f.videoLimit': '视频并发数',
      'tok.f.limitHint': '-1 或 0：不限',
      'tok.st2at': 'ST → AT',
      'tok.rt2at': 'RT → AT',
      'tok.converted': '转换成功：{email}，过期时间 {expires}。',
      'tok.rotated': '转换成功；Refresh Token 已轮换，新的已填入。',
      'tok.added': 'Token 已添加（ID {id}）。',
      'tok.updated': 'Token {who} 已更新。',
      'tok.activateTitle': '为 {who} 激活 Sora 2',
      'tok.inviteCode': '邀请码',
      'tok.activateBtn': '激活',
      'tok.activated': '{who}：Sora 2 已激活。',
      'tok.batchTitle': '批量添加',
      'tok.batchKind': '每行是',
      'tok.kind.at': 'Access Token（AT）',
      'tok.kind.st': 'Session Token（ST）',
      'tok.kind.rt': 'Refresh Token（RT）',
      'tok.batchLines': 'Token，每行一个',
      'tok.batchHint': '最多 1000 行；空行会被忽略。',
      'tok.batchTooMany': '一次最多 1000 行（当前 {n} 行）。',
      'tok.batchNone': '请至少粘贴一个 Token。',
      'tok.batchSubmit': '开始添加',
      'tok.batchCaption': '每行的结果',
      'tok.r.line': '行',
      'tok.r.outcome': '结果',
      'tok.r.email': '邮箱',
      'tok.r.id': 'Token',
      'tok.r.detail': '说明',
      'tok.r.added': '已添加',
      'tok.r.duplicate': '重复',
      'tok.r.failed': '失败',
      'tok.importTitle': '导入 Token',
      'tok.importFile': 'JSON 文件（导出的列表）',
      'tok.importHint': '按邮箱匹配：已存在的会被更新，新的会被添加。',
      'tok.importSubmit': '导入',
      'tok.importBad': '文件必须是非空的 Token JSON 数组。',
      'tok.importNoFile': '请选择文件。',
      'tok.exported': '已导出 {n} 个 Token。',
      'tok.batchTest': '正在测试 {n} 个 Token',
      'tok.batchEnable': '正在启用 {n} 个 Token',
      'tok.batchDisable': '正在禁用 {n} 个 Token',
      'tok.batchDelete': '正在删除 {n} 个 Token',
    },
  },

  mount(box) {
    const st = {
      all: [], view: [], byId: new Map(), page: 0, size: 50, sortKey: 'id', sortDir: -1,
      state: '', q: '', selected: new Set(), loaded: false, gone: false,
    };

    // ---------------------------------------------------------- toolbar
    const search = h('input', { type: 'search', id: 'tok-search', 'aria-describedby': 'tok-search-hint', autocomplete: 'off' });
    const stateSel = h('select', { id: 'tok-state' },
      h('option', { value: '' }, t('tok.allStates')),
      STATES.map((s) => h('option', { value: s }, t(`state.${s}`))));
    const sizeSel = h('select', { id: 'tok-size' }, SIZES.map((n) => h('option', { value: n }, String(n))));
    sizeSel.value = String(st.size);
    const autoId = uid('auto');
    const auto = h('input', { type: 'checkbox', role: 'switch', id: autoId, disabled: true, 'aria-describedby': `${autoId}-hint` });
    const invalidBtn = button(t('tok.deleteInvalid', { n: 0 }), () => deleteInvalid(), { kind: 'danger', small: true });
    const summary = h('p', { class: 'muted', id: 'tok-summary', role: 'status' }, t('common.loading'));

    const toolbar = h('div', { class: 'toolbar', role: 'group', 'aria-label': t('tok.title') },
      h('div', { class: 'field field-inline' }, h('label', { for: 'tok-search' }, t('tok.search')), search,
        h('span', { id: 'tok-search-hint', class: 'visually-hidden' }, t('tok.searchHint'))),
      h('div', { class: 'field field-inline' }, h('label', { for: 'tok-state' }, t('tok.stateFilter')), stateSel),
      h('div', { class: 'field field-inline' }, h('label', { for: 'tok-size' }, t('tok.pageSize')), sizeSel),
      h('div', { class: 'toolbar-buttons' },
        button(t('tok.add'), () => tokenForm(null), { kind: 'primary', small: true }),
        button(t('tok.batchAdd'), () => batchAdd(), { small: true }),
        button(t('tok.import'), () => importDialog(), { small: true }),
        button(t('tok.export'), () => exportAll(), { small: true }),
        button(t('common.refresh'), () => load(), { small: true }),
        invalidBtn),
      h('div', { class: 'field field-check' }, auto, h('label', { for: autoId }, t('tok.autoRefresh')),
        h('span', { id: `${autoId}-hint`, class: 'visually-hidden' }, t('tok.autoRefreshHint'))));

    // ---------------------------------------------------------- selection
    const selCount = h('strong', { id: 'tok-selcount' });
    const selAll = button('', () => {
      for (const r of st.view) st.selected.add(r.id);
      renderRows();
    }, { small: true, kind: 'ghost' });
    const selBar = h('div', { class: 'selbar', id: 'tok-selbar', role: 'region', 'aria-label': t('tok.selected', { n: '' }), hidden: true },
      selCount, selAll,
      button(t('tok.clearSel'), () => { st.selected.clear(); renderRows(); }, { small: true, kind: 'ghost' }),
      button(t('tok.testSel'), () => batchAction('test'), { small: true }),
      button(t('tok.enableSel'), () => batchAction('enable'), { small: true }),
      button(t('tok.disableSel'), () => batchAction('disable'), { small: true }),
      button(t('tok.deleteSel'), () => batchAction('delete'), { small: true, kind: 'danger' }));

    // ---------------------------------------------------------- table
    const columns = [
      { key: 'id', label: t('tok.col.id'), sort: 'id' },
      { key: 'account', label: t('tok.col.account'), sort: 'email' },
      { key: 'state', label: t('tok.col.state'), sort: 'state' },
      { key: 'group', label: t('tok.col.group'), sort: 'group' },
      { key: 'plan', label: t('tok.col.plan'), sort: 'plan' },
      { key: 'sora2', label: t('tok.col.sora2'), sort: 'sora2' },
      { key: 'limits', label: t('tok.col.limits') },
      { key: 'counters', label: t('tok.col.counters'), sort: 'errors' },
      { key: 'expiry', label: t('tok.col.expiry'), sort: 'expiry' },
      { key: 'remark', label: t('tok.col.remark'), sort: 'remark' },
      { key: 'actions', label: t('common.actions') },
    ];
    const pageBox = h('input', { type: 'checkbox', id: 'tok-selpage', 'aria-label': t('tok.selectPage') });
    const caption = h('caption', { class: 'visually-hidden' });
    const headRow = h('tr', null, h('th', { scope: 'col', class: 'col-check' }, pageBox),
      columns.map((c) => {
        const th = h('th', { scope: 'col', dataset: { col: c.key } });
        if (c.sort) {
          th.appendChild(h('button', {
            type: 'button', class: 'sort', 'aria-label': t('tok.sortBy', { col: c.label }),
            onclick: () => {
              if (st.sortKey === c.sort) st.sortDir = -st.sortDir;
              else { st.sortKey = c.sort; st.sortDir = c.sort === 'id' ? -1 : 1; }
              apply();
            },
          }, c.label));
        } else {
          th.textContent = c.label;
        }
        return th;
      }));
    const tbody = h('tbody', { id: 'tok-rows' });
    const table = h('table', { class: 'table tokens cards-on-phone', id: 'tok-table' }, caption, h('thead', null, headRow), tbody);

    const prev = button(t('tok.prev'), () => { st.page -= 1; renderRows(); }, { small: true });
    const next = button(t('tok.next'), () => { st.page += 1; renderRows(); }, { small: true });
    const pageOf = h('span', { id: 'tok-pageof', 'aria-live': 'polite' });
    const pager = h('nav', { class: 'pager', 'aria-label': t('tok.pager') }, prev, pageOf, next);

    replace(box,
      h('div', { class: 'page-head' }, h('h1', null, t('tok.title')), summary),
      toolbar, selBar,
      h('div', { class: 'table-wrap' }, table),
      pager);

    // ---------------------------------------------------------- data
    async function load() {
      performance.mark('tokens:load-start');
      let rows;
      try {
        rows = await api.get('/api/tokens');
      } catch (e) {
        if (!st.gone && e.status !== 401) summary.textContent = errorText(e);
        return;
      }
      if (st.gone) return;
      for (const r of rows) r._q = searchText(r);
      st.all = rows;
      st.byId = new Map(rows.map((r) => [r.id, r]));
      for (const id of [...st.selected]) if (!st.byId.has(id)) st.selected.delete(id);
      st.loaded = true;
      apply();
      performance.mark('tokens:load-end');
      performance.measure('tokens:load', 'tokens:load-start', 'tokens:load-end');
      box.dataset.loaded = String(rows.length);
      box.dataset.loads = String(Number(box.dataset.loads || 0) + 1);
    }

    function apply() {
      performance.mark('tokens:apply-start');
      const terms = st.q.toLowerCase().split(/\s+/).filter(Boolean);
      const key = SORTS[st.sortKey];
      const dir = st.sortDir;
      st.view = st.all.filter((r) => (!st.state || r.state === st.state)
        && terms.every((w) => r._q.includes(w)));
      st.view.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        if (x < y) return -dir;
        if (x > y) return dir;
        return b.id - a.id;
      });
      const invalid = st.all.filter((r) => r.state === 'invalid').length;
      invalidBtn.textContent = t('tok.deleteInvalid', { n: fmtNum(invalid) });
      invalidBtn.disabled = invalid === 0;
      for (const th of headRow.querySelectorAll('th[data-col]')) {
        const c = columns.find((x) => x.key === th.dataset.col);
        if (c.sort === st.sortKey) th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
        else if (c.sort) th.setAttribute('aria-sort', 'none');
      }
      const sortCol = columns.find((c) => c.sort === st.sortKey);
      caption.textContent = t('tok.caption', { key: sortCol ? sortCol.label : st.sortKey });
      renderRows();
      performance.mark('tokens:apply-end');
      performance.measure('tokens:filter', 'tokens:apply-start', 'tokens:apply-end');
    }

    function renderRows() {
      const pages = Math.max(1, Math.ceil(st.view.length / st.size));
      st.page = Math.min(Math.max(0, st.page), pages - 1);
      const rows = st.view.slice(st.page * st.size, (st.page + 1) * st.size);
      tbody.replaceChildren(...rows.map(rowEl));
      if (rows.length === 0) {
        tbody.appendChild(h('tr', null, h('td', { colspan: columns.length + 1, class: 'muted' },
          st.loaded ? t('common.noRows') : t('common.loading'))));
      }
      summary.textContent = t('tok.summary', { shown: fmtNum(st.view.length), total: fmtNum(st.all.length) });
      pageOf.textContent = t('tok.pageOf', { page: fmtNum(st.page + 1), pages: fmtNum(pages) });
      prev.disabled = st.page === 0;
      next.disabled = st.page >= pages - 1;
      const onPage = rows.filter((r) => st.selected.has(r.id)).length;
      pageBox.checked = rows.length > 0 && onPage === rows.length;
      pageBox.indeterminate = onPage > 0 && onPage < rows.length;
      selBar.hidden = st.selected.size === 0;
      selCount.textContent = t('tok.selected', { n: fmtNum(st.selected.size) });
      selAll.textContent = t('tok.selectAll', { n: fmtNum(st.view.length) });
      selAll.hidden = st.selected.size >= st.view.length;
    }

    function cell(label, ...content) {
      return h('td', { 'data-label': label }, ...content);
    }

    function rowEl(r) {
      const l = (k) => columns.find((c) => c.key === k).label;
      const check = h('input', {
        type: 'checkbox', checked: st.selected.has(r.id), 'aria-label': t('tok.selectRow', { who: who(r) }),
        onchange: (e) => {
          if (e.target.checked) st.selected.add(r.id); else st.selected.delete(r.id);
          renderRows();
        },
      });
      const cooling = r.state === 'cooling' && r.cooled_until;
      const s2 = r.sora2_supported;
      const act = (label, fn, kind) => button(label, fn, {
        small: true, kind, ariaLabel: t('tok.actionFor', { action: label, who: who(r) }),
      });
      return h('tr', { dataset: { id: r.id, state: r.state } },
        h('td', { class: 'col-check' }, check),
        cell(l('id'), String(r.id)),
        cell(l('account'),
          h('span', { class: 'strong' }, r.email || '–'),
          h('span', { class: 'sub' }, [r.name, r.username ? `@${r.username}` : null].filter(Boolean).join(' · ')),
          r.client_id ? h('span', { class: 'sub mono', title: r.client_id }, r.client_id.slice(0, 12)) : null),
        cell(l('state'),
          badge(t(`state.${r.state}`) === `state.${r.state}` ? r.state : t(`state.${r.state}`), r.state),
          r.state_reason ? h('span', { class: 'sub reason' }, r.state_reason) : null,
          cooling ? h('span', { class: 'sub' }, t('tok.until', { time: fmtTime(r.cooled_until) })) : null,
          !cooling && r.state_changed_at ? h('span', { class: 'sub' }, t('tok.since', { time: fmtTime(r.state_changed_at) })) : null),
        cell(l('group'), r.group ? h('span', { class: 'mono wrap' }, r.group) : h('span', { class: 'muted' }, t('tok.noGroup'))),
        cell(l('plan'), r.plan_title || r.plan_type || '–',
          r.subscription_end ? h('span', { class: 'sub' }, t('tok.until', { time: fmtTime(r.subscription_end) })) : null),
        cell(l('sora2'),
          badge(s2 === true ? t('tok.sora2.yes') : s2 === false ? t('tok.sora2.no') : t('tok.sora2.unknown'),
            s2 === true ? 'active' : s2 === false ? 'disabled' : 'neutral'),
          r.sora2_invite_code ? h('span', { class: 'sub mono' }, t('tok.sora2.invite', {
            code: r.sora2_invite_code, used: r.sora2_redeemed_count ?? '?', total: r.sora2_total_count ?? '?',
          })) : null,
          s2 === true ? h('span', { class: 'sub' }, r.sora2_remaining_count === null || r.sora2_remaining_count === undefined
            ? t('tok.sora2.leftUnknown') : t('tok.sora2.left', { n: fmtNum(r.sora2_remaining_count) })) : null,
          r.sora2_cooldown_until ? h('span', { class: 'sub' }, t('tok.until', { time: fmtTime(r.sora2_cooldown_until) })) : null),
        cell(l('limits'),
          h('span', { class: 'kind-line' }, h('span', { class: 'kind' }, t('tok.col.images')),
            badge(r.image_enabled ? t('tok.enabled') : t('tok.disabledKind'), r.image_enabled ? 'active' : 'disabled'),
            h('span', { class: 'num', title: t('tok.inflight') }, limitText(r.image_inflight, r.image_concurrency))),
          h('span', { class: 'kind-line' }, h('span', { class: 'kind' }, t('tok.col.videos')),
            badge(r.video_enabled ? t('tok.enabled') : t('tok.disabledKind'), r.video_enabled ? 'active' : 'disabled'),
            h('span', { class: 'num', title: t('tok.inflight') }, limitText(r.video_inflight, r.video_concurrency)))),
        cell(l('counters'),
          h('span', { class: 'sub' }, t('tok.countImages', { today: fmtNum(r.today_image_count || 0), total: fmtNum(r.image_count || 0) })),
          h('span', { class: 'sub' }, t('tok.countVideos', { today: fmtNum(r.today_video_count || 0), total: fmtNum(r.video_count || 0) })),
          h('span', { class: ['sub', r.consecutive_errors > 0 && 'warn'] }, t('tok.countErrors', {
            today: fmtNum(r.today_error_count || 0), total: fmtNum(r.error_count || 0), run: fmtNum(r.consecutive_errors || 0),
          })),
          h('span', { class: 'sub' }, t('tok.uses', { n: fmtNum(r.use_count || 0), time: fmtTime(r.last_used_at) }))),
        cell(l('expiry'), h('span', { class: expiryClass(r.expiry_time) }, fmtTime(r.expiry_time))),
        cell(l('remark'), h('span', { class: 'wrap remark' }, r.remark || ''),
          h('span', { class: 'sub' }, `${t('tok.col.proxy')}: `,
            r.proxy_url ? h('span', { class: 'mono wrap' }, r.proxy_url) : t('tok.globalProxy'))),
        cell(l('actions'), h('div', { class: 'row-actions' },
          act(t('tok.test'), () => testOne(r)),
          act(t('tok.edit'), () => tokenForm(r)),
          r.state === 'disabled' ? act(t('tok.enable'), () => setState(r, true)) : act(t('tok.disable'), () => setState(r, false)),
          s2 !== true ? act(t('tok.activate'), () => activate(r)) : null,
          act(t('tok.delete'), () => deleteOne(r), 'danger'),
          h('a', { class: 'btn btn-sm', href: `#/characters/${r.id}`,
            'aria-label': t('tok.actionFor', { action: t('tok.characters'), who: who(r) }) }, t('tok.characters')))));
    }

    // ---------------------------------------------------------- one token
    async function testOne(r) {
      try {
        const res = await api.post(`/api/tokens/${r.id}/test`);
        if (res.status === 'success') toast(t('tok.testOk', { who: who(r) }), 'ok');
        else toast(t('tok.testFailed', { who: who(r), message: res.message }), 'error');
      } catch (e) {
        toast(t('tok.testFailed', { who: who(r), message: errorText(e) }), 'error');
      }
      await load();
    }

    async function setState(r, on) {
      try {
        await api.post(`/api/tokens/${r.id}/${on ? 'enable' : 'disable'}`);
        toast(t(on ? 'tok.enabledMsg' : 'tok.disabledMsg', { who: who(r) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
      await load();
    }

    async function deleteOne(r) {
      if (!await confirm(t('tok.confirmDelete', { who: who(r) }), { danger: true, confirmLabel: t('tok.delete') })) return;
      try {
        await api.del(`/api/tokens/${r.id}`);
        st.selected.delete(r.id);
        toast(t('tok.deleted', { who: who(r) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
      await load();
    }

    function activate(r) {
      const code = field({ name: 'invite_code', label: t('tok.inviteCode'), required: true, autocomplete: 'off', spellcheck: 'false' });
      const area = formError();
      const form = h('form', { novalidate: true }, code.el, area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('tok.activateBtn'))));
      const d = dialog({ title: t('tok.activateTitle', { who: who(r) }), body: form });
      form.addEventListener('submit', busy(form, async () => {
        clearErrors([code], area);
        const v = code.value().trim();
        if (!v) { code.setError(t('tok.inviteCode')); return; }
        try {
          await api.post(`/api/tokens/${r.id}/sora2/activate${api.query({ invite_code: v })}`);
          toast(t('tok.activated', { who: who(r) }), 'ok');
          d.close();
          await load();
        } catch (e) {
          showError([code], area, e, () => 'invite_code');
        }
      }));
      code.input.focus();
    }

    // Add (r null) or edit a token.
    function tokenForm(r) {
      const edit = r !== null;
      const f = {
        token: field({ name: 'token', label: edit ? t('tok.f.tokenEdit') : t('tok.f.token'), type: 'textarea', rows: 3, required: !edit, spellcheck: 'false' }),
        st: field({ name: 'st', label: t('tok.f.st'), type: 'textarea', rows: 2, spellcheck: 'false', placeholder: edit ? t('tok.f.secretKeep') : undefined }),
        rt: field({ name: 'rt', label: t('tok.f.rt'), type: 'textarea', rows: 2, spellcheck: 'false', placeholder: edit ? t('tok.f.secretKeep') : undefined }),
        client_id: field({ name: 'client_id', label: t('tok.f.client'), hint: t('tok.f.clientHint'), value: edit ? r.client_id : '' }),
        proxy_url: field({ name: 'proxy_url', label: t('tok.f.proxy'), type: 'url', hint: t('tok.f.proxyHint'), value: edit ? r.proxy_url : '' }),
        remark: field({ name: 'remark', label: t('tok.f.remark'), value: edit ? r.remark : '' }),
        group: field({ name: 'group', label: t('tok.f.group'), hint: t('tok.f.groupHint'), maxlength: 64, spellcheck: 'false', autocomplete: 'off', value: edit ? r.group : '' }),
        image_enabled: field({ name: 'image_enabled', label: t('tok.f.image'), type: 'switch', value: edit ? r.image_enabled : true }),
        image_concurrency: field({ name: 'image_concurrency', label: t('tok.f.imageLimit'), type: 'number', min: -1, max: 10000, value: edit ? r.image_concurrency : -1, hint: t('tok.f.limitHint') }),
        video_enabled: field({ name: 'video_enabled', label: t('tok.f.video'), type: 'switch', value: edit ? r.video_enabled : true }),
        video_concurrency: field({ name: 'video_concurrency', label: t('tok.f.videoLimit'), type: 'number', min: -1, max: 10000, value: edit ? r.video_concurrency : -1, hint: t('tok.f.limitHint') }),
      };
      const fields = Object.values(f);
      const area = formError();
      const note = h('p', { class: 'notice', role: 'status', hidden: true });
      const convert = (kind) => async () => {
        clearErrors(fields, area);
        const src = f[kind].value().trim();
        if (!src) { f[kind].setError(t(kind === 'st' ? 'tok.f.st' : 'tok.f.rt')); f[kind].input.focus(); return; }
        try {
          const body = kind === 'st' ? { st: src } : { rt: src, client_id: f.client_id.value().trim() || undefined };
          const res = await api.post(`/api/tokens/${kind}2at`, body);
          f.token.input.value = res.access_token;
          if (kind === 'rt' && res.refresh_token) f.rt.input.value = res.refresh_token;
          note.textContent = kind === 'st'
            ? t('tok.converted', { email: res.email || '?', expires: fmtTime(res.expires) })
            : t('tok.rotated');
          note.hidden = false;
        } catch (e) {
          showError(fields, area, e, () => kind);
        }
      };
      f.st.el.appendChild(button(t('tok.st2at'), convert('st'), { small: true }));
      f.rt.el.appendChild(button(t('tok.rt2at'), convert('rt'), { small: true }));
      const form = h('form', { class: 'form-grid', novalidate: true },
        f.token.el, f.st.el, f.rt.el, note, f.client_id.el, f.proxy_url.el, f.remark.el, f.group.el,
        h('div', { class: 'pair' }, f.image_enabled.el, f.image_concurrency.el),
        h('div', { class: 'pair' }, f.video_enabled.el, f.video_concurrency.el),
        area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, edit ? t('common.save') : t('tok.add'))));
      const d = dialog({ title: edit ? t('tok.editTitle', { who: who(r) }) : t('tok.addTitle'), body: form, wide: true });
      const guess = (msg) => (/access token|^Invalid token|^Token expired|^token\b/.test(msg) ? 'token'
        : /^Failed to convert ST/.test(msg) ? 'st' : /^Failed to convert RT/.test(msg) ? 'rt' : null);
      form.addEventListener('submit', busy(form, async () => {
        clearErrors(fields, area);
        const body = {};
        for (const k of ['token', 'st', 'rt']) {
          const v = f[k].value().trim();
          if (v) body[k] = v;
        }
        for (const k of ['client_id', 'proxy_url', 'remark', 'group']) {
          const v = f[k].value().trim();
          if (v || edit) body[k] = v;
        }
        for (const k of ['image_enabled', 'video_enabled']) body[k] = f[k].value();
        for (const k of ['image_concurrency', 'video_concurrency']) {
          const v = f[k].value();
          if (v === null || !Number.isInteger(v)) { f[k].setError(t('tok.f.limitHint')); f[k].input.focus(); return; }
          body[k] = v;
        }
        if (!edit && !body.token) { f.token.setError(t('tok.f.token')); f.token.input.focus(); return; }
        try {
          if (edit) {
            await api.put(`/api/tokens/${r.id}`, body);
            toast(t('tok.updated', { who: who(r) }), 'ok');
          } else {
            const res = await api.post('/api/tokens', body);
            toast(t('tok.added', { id: res.token_id }), 'ok');
          }
          d.close();
          await load();
        } catch (e) {
          showError(fields, area, e, guess);
        }
      }));
      f.token.input.focus();
    }

    // ---------------------------------------------------------- many
    function batchAdd() {
      const kindName = uid('kind');
      const kinds = ['at', 'st', 'rt'].map((k, i) => {
        const id = `${kindName}-${k}`;
        return h('div', { class: 'field-check' },
          h('input', { type: 'radio', name: kindName, id, value: k, checked: i === 0 }),
          h('label', { for: id }, t(`tok.kind.${k}`)));
      });
      const lines = field({ name: 'tokens', label: t('tok.batchLines'), type: 'textarea', rows: 8, hint: t('tok.batchHint'), spellcheck: 'false' });
      const remark = field({ name: 'remark', label: t('tok.f.remark') });
      const proxy = field({ name: 'proxy_url', label: t('tok.f.proxy'), type: 'url', hint: t('tok.f.proxyHint') });
      const group = field({ name: 'group', label: t('tok.f.group'), hint: t('tok.f.groupHint'), maxlength: 64, spellcheck: 'false', autocomplete: 'off' });
      const img = field({ name: 'image_enabled', label: t('tok.f.image'), type: 'switch', value: true });
      const vid = field({ name: 'video_enabled', label: t('tok.f.video'), type: 'switch', value: true });
      const fields = [lines, remark, proxy, group, img, vid];
      const area = formError();
      const out = h('div', { id: 'batch-results' });
      const form = h('form', { class: 'form-grid', novalidate: true },
        h('fieldset', { class: 'field-wide' }, h('legend', null, t('tok.batchKind')), kinds),
        lines.el, remark.el, proxy.el, group.el, h('div', { class: 'pair' }, img.el, vid.el), area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('tok.batchSubmit'))),
        out);
      dialog({ title: t('tok.batchTitle'), body: form, wide: true });
      form.addEventListener('submit', busy(form, async () => {
        clearErrors(fields, area);
        replace(out);
        const kind = form.querySelector(`input[name="${kindName}"]:checked`).value;
        const numbered = lines.value().split(/\r?\n/).map((text, i) => ({ text: text.trim(), line: i + 1 }))
          .filter((x) => x.text);
        if (numbered.length === 0) { lines.setError(t('tok.batchNone')); lines.input.focus(); return; }
        if (numbered.length > 1000) { lines.setError(t('tok.batchTooMany', { n: numbered.length })); lines.input.focus(); return; }
        const body = { kind, tokens: numbered.map((x) => x.text), image_enabled: img.value(), video_enabled: vid.value() };
        if (remark.value().trim()) body.remark = remark.value().trim();
        if (proxy.value().trim()) body.proxy_url = proxy.value().trim();
        if (group.value().trim()) body.group = group.value().trim();
        let res;
        try {
          res = await api.post('/api/tokens/batch', body);
        } catch (e) {
          showError(fields, area, e);
          return;
        }
        const kindOf = { added: 'active', duplicate: 'cooling', failed: 'invalid' };
        replace(out,
          h('p', { role: 'status', class: 'notice', id: 'batch-summary' }, res.message),
          h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone', id: 'batch-table' },
            h('caption', null, t('tok.batchCaption')),
            h('thead', null, h('tr', null, ['tok.r.line', 'tok.r.outcome', 'tok.r.email', 'tok.r.id', 'tok.r.detail']
              .map((k) => h('th', { scope: 'col' }, t(k))))),
            h('tbody', null, res.results.map((x, i) => h('tr', { dataset: { outcome: x.status } },
              h('td', { 'data-label': t('tok.r.line') }, String(numbered[i] ? numbered[i].line : x.line)),
              h('td', { 'data-label': t('tok.r.outcome') }, badge(t(`tok.r.${x.status}`), kindOf[x.status] || 'neutral')),
              h('td', { 'data-label': t('tok.r.email') }, x.email || '–'),
              h('td', { 'data-label': t('tok.r.id') }, x.token_id ? `#${x.token_id}` : '–'),
              h('td', { 'data-label': t('tok.r.detail'), class: 'wrap' }, x.detail || '')))))));
        await load();
      }));
      lines.input.focus();
    }

    function importDialog() {
      const file = field({ name: 'file', label: t('tok.importFile'), type: 'file', accept: 'application/json,.json', hint: t('tok.importHint') });
      const area = formError();
      const out = h('div', { id: 'import-results' });
      const form = h('form', { novalidate: true }, file.el, area,
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('tok.importSubmit'))), out);
      dialog({ title: t('tok.importTitle'), body: form });
      form.addEventListener('submit', busy(form, async () => {
        clearErrors([file], area);
        replace(out);
        const chosen = file.input.files && file.input.files[0];
        if (!chosen) { file.setError(t('tok.importNoFile')); return; }
        let items;
        try {
          items = JSON.parse(await chosen.text());
        } catch (_) {
          items = null;
        }
        if (!Array.isArray(items) || items.length === 0) { file.setError(t('tok.importBad')); return; }
        try {
          const res = await api.post('/api/tokens/import', { tokens: items });
          replace(out, h('p', { class: 'notice', role: 'status', id: 'import-summary' }, res.message),
            res.errors && res.errors.length ? h('ul', { class: 'plain' }, res.errors.map((x) =>
              h('li', null, `#${x.index + 1} ${x.email || ''}: ${x.detail}`))) : null);
          await load();
        } catch (e) {
          showError([file], area, e);
        }
      }));
    }

    async function exportAll() {
      try {
        const r = await api.get('/api/tokens/export', { raw: true });
        const cd = r.headers.get('Content-Disposition') || '';
        const m = /filename="([^"]+)"/.exec(cd);
        const blob = await r.blob();
        const n = JSON.parse(await blob.text()).length;
        download(blob, m ? m[1] : 'tokens.json');
        toast(t('tok.exported', { n: fmtNum(n) }), 'ok');
      } catch (e) {
        toast(errorText(e), 'error');
      }
    }

    // The server's batch routes (POST /api/tokens/batch/{kind}): one
    // request per BATCH_IDS[kind] ids (usually one), one result per id;
    // a refused request fails each id of its part.
    async function runBatch(kind, ids, title) {
      const pd = progressDialog(title);
      const per = BATCH_IDS[kind];
      const results = [];
      pd.update(0, ids.length);
      for (let i = 0; i < ids.length; i += per) {
        const part = ids.slice(i, i + per);
        try {
          const res = await api.post(`/api/tokens/batch/${kind}`, { ids: part });
          for (const r of res.results) results.push({ item: r.id, ok: r.ok, error: r.ok ? null : new Error(r.detail) });
        } catch (e) {
          for (const id of part) results.push({ item: id, ok: false, error: e });
        }
        pd.update(results.length, ids.length);
      }
      pd.finish(results, (id) => (st.byId.has(id) ? who(st.byId.get(id)) : `#${id}`));
      return results;
    }

    async function batchAction(kind) {
      const ids = [...st.selected];
      if (ids.length === 0) return;
      if (kind === 'delete' && !await confirm(t('tok.confirmDeleteN', { n: fmtNum(ids.length) }), { danger: true, confirmLabel: t('tok.delete') })) return;
      if (kind === 'disable' && !await confirm(t('tok.confirmDisableN', { n: fmtNum(ids.length) }), { confirmLabel: t('tok.disable') })) return;
      const titles = { test: 'tok.batchTest', enable: 'tok.batchEnable', disable: 'tok.batchDisable', delete: 'tok.batchDelete' };
      const results = await runBatch(kind, ids, t(titles[kind], { n: fmtNum(ids.length) }));
      if (kind === 'delete') for (const r of results) if (r.ok) st.selected.delete(r.item);
      await load();
    }

    async function deleteInvalid() {
      const ids = st.all.filter((r) => r.state === 'invalid').map((r) => r.id);
      if (ids.length === 0) { toast(t('tok.noInvalid')); return; }
      if (!await confirm(t('tok.confirmDeleteInvalid', { n: fmtNum(ids.length) }), { danger: true, confirmLabel: t('tok.delete') })) return;
      const results = await runBatch('delete', ids, t('tok.batchDelete', { n: fmtNum(ids.length) }));
      for (const r of results) if (r.ok) st.selected.delete(r.item);
      await load();
    }

    // ---------------------------------------------------------- wiring
    let timer = null;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { st.q = search.value; st.page = 0; apply(); }, 120);
    });
    stateSel.addEventListener('change', () => { st.state = stateSel.value; st.page = 0; apply(); });
    sizeSel.addEventListener('change', () => { st.size = Number(sizeSel.value); st.page = 0; renderRows(); });
    pageBox.addEventListener('change', () => {
      const rows = st.view.slice(st.page * st.size, (st.page + 1) * st.size);
      for (const r of rows) if (pageBox.checked) st.selected.add(r.id); else st.selected.delete(r.id);
      renderRows();
    });
    auto.addEventListener('change', async () => {
      auto.disabled = true;
      try {
        await api.post('/api/token-refresh/enabled', { enabled: auto.checked });
        toast(auto.checked ? t('tok.autoRefreshOn') : t('tok.autoRefreshOff'), 'ok');
      } catch (e) {
        auto.checked = !auto.checked;
        toast(errorText(e), 'error');
      }
      auto.disabled = false;
    });
    api.get('/api/token-refresh/config').then((c) => {
      auto.checked = Boolean(c.config && c.config.at_auto_refresh_enabled);
      auto.disabled = false;
    }).catch(() => {});
    renderRows();
    load();
    box.dataset.lang = lang();
    return () => { st.gone = true; clearTimeout(timer); };
  },
};
