// Request logs (GET /api/logs): one row per answered generation request,
// with filters, export and a detail view.
import { h } from '../dom.js';
import { t, fmtNum, fmtTime } from '../i18n.js';
import { badge, dialog } from '../ui.js';
import { recordsView, recordMessages } from '../records.js';

function codeBadge(c) {
  return badge(String(c), c < 400 ? 'active' : c === 499 ? 'disabled' : 'invalid');
}

function secs(ms) {
  return ms === null || ms === undefined ? '–' : t('log.secs', { n: fmtNum(ms / 1000, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) });
}

function openDetail(r) {
  const row = (label, value) => [h('dt', null, label), h('dd', null, value === null || value === undefined || value === '' ? '–' : value)];
  dialog({
    title: t('log.detailTitle', { id: r.id }),
    body: h('dl', { class: 'details' },
      row(t('log.time'), fmtTime(r.created_at)),
      row(t('log.request'), h('span', { class: 'mono' }, r.request_id || '–')),
      row(t('log.operation'), r.operation),
      row(t('log.model'), r.model),
      row(t('log.token'), r.token_id ? `#${r.token_id} ${r.token_email || ''}` : t('log.unknown')),
      row(t('log.code'), codeBadge(r.status_code)),
      row(t('log.duration'), secs(r.duration_ms)),
      row(t('log.error'), r.error ? h('span', { class: 'wrap' }, r.error) : null)),
  });
}

export default {
  id: 'logs',
  nav: 'nav.logs',
  messages: {
    en: Object.assign({}, recordMessages.en, {
      'nav.logs': 'Request logs',
      'log.title': 'Request logs',
      'log.caption': 'Answered generation requests, newest first',
      'log.ok': 'succeeded (below 400)',
      'log.failed': 'failed (400 and above)',
      'log.operation': 'Operation',
      'log.time': 'Time',
      'log.request': 'Request ID',
      'log.model': 'Model',
      'log.token': 'Token',
      'log.unknown': 'unknown',
      'log.code': 'Status',
      'log.duration': 'Duration',
      'log.error': 'Error',
      'log.secs': '{n} s',
      'log.detailTitle': 'Request log {id}',
    }),
    'zh-CN': Object.assign({}, recordMessages['zh-CN'], {
      'nav.logs': '请求日志',
      'log.title': '请求日志',
      'log.caption': '已应答的生成请求，最新的在前',
      'log.ok': '成功（低于 400）',
      'log.failed': '失败（400 及以上）',
      'log.operation': '操作',
      'log.time': '时间',
      'log.request': '请求 ID',
      'log.model': '模型',
      'log.token': 'Token',
      'log.unknown': '未知',
      'log.code': '状态码',
      'log.duration': '耗时',
      'log.error': '错误',
      'log.secs': '{n} 秒',
      'log.detailTitle': '请求日志 {id}',
    }),
  },
  mount(box) {
    const view = recordsView(box, {
      prefix: 'logs',
      title: t('log.title'),
      caption: t('log.caption'),
      endpoint: '/api/logs',
      rowsOf: (res) => res,
      live: 2000,
      statusOptions: [['ok', t('log.ok')], ['error', t('log.failed')]],
      filters: [{
        name: 'operation', label: t('log.operation'), type: 'select',
        options: [['', t('common.any')], ['generate_image', 'generate_image'], ['generate_video', 'generate_video']],
      }],
      columns: [
        { label: t('log.time'), render: (r) => fmtTime(r.created_at) },
        { label: t('log.operation'), render: (r) => r.operation },
        { label: t('log.model'), render: (r) => r.model || '–' },
        { label: t('log.token'), render: (r) => (r.token_id ? (r.token_email || `#${r.token_id}`) : t('log.unknown')) },
        { label: t('log.code'), render: (r) => codeBadge(r.status_code) },
        { label: t('log.duration'), render: (r) => secs(r.duration_ms) },
        { label: t('log.error'), cls: 'wrap', render: (r) => r.error || '' },
      ],
      exportColumns: [['id', 'id'], ['created_at', 'created_at'], ['request_id', 'request_id'], ['operation', 'operation'],
        ['model', 'model'], ['token_id', 'token_id'], ['token_email', 'token_email'], ['status_code', 'status_code'],
        ['duration_ms', 'duration_ms'], ['error', 'error']],
      detail: openDetail,
    });
    return () => view.stop();
  },
};
