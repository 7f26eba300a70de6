// The dashboard: the pool by state, today's and all-time counts, jobs
// running and queued, recent failures with their reasons and the
// upstream's health, refreshed every few seconds.
import { h, replace } from '../dom.js';
import { t, fmtNum, fmtTime } from '../i18n.js';
import * as api from '../api.js';
import { badge, errorText, every } from '../ui.js';

const REFRESH_MS = 5000;
const STATES = ['active', 'cooling', 'disabled', 'invalid', 'expired'];

function card(label, value, sub, id) {
  return h('div', { class: 'stat', id },
    h('p', { class: 'stat-label' }, label),
    h('p', { class: 'stat-value' }, value),
    sub ? h('p', { class: 'stat-sub' }, sub) : null);
}

// The upstream's state over the five-minute window (docs/admin-ui.md,
// "Dashboard"): `idle` without a call; `down` when at least 3 calls were
// made and half or more of them failed; `degraded` when an endpoint
// class failed more than a fifth of its calls; `ok` otherwise. A failure
// is a call without an answer, or answered 429 or 5xx.
export function upstreamState(up) {
  const rows = Object.values(up || {});
  const calls = rows.reduce((n, v) => n + (Number(v.calls) || 0), 0);
  const failures = rows.reduce((n, v) => n + (Number(v.failures) || 0), 0);
  if (calls === 0) return 'idle';
  if (calls >= 3 && failures * 2 >= calls) return 'down';
  if (rows.some((v) => v.calls > 0 && v.failures / v.calls > 0.2)) return 'degraded';
  return 'ok';
}

const UPSTREAM_KIND = { idle: 'neutral', ok: 'active', degraded: 'cooling', down: 'invalid' };

function render(parts, stats, failures, ready) {
  if (stats) {
    const states = stats.states || {};
    replace(parts.tokens,
      card(t('dash.total'), fmtNum(stats.total_tokens), null, 'stat-total'),
      card(t('dash.selectable'), fmtNum(stats.active_tokens), t('dash.selectableHint'), 'stat-selectable'),
      h('div', { class: 'stat stat-wide', id: 'stat-states' },
        h('p', { class: 'stat-label' }, t('dash.byState')),
        h('ul', { class: 'state-list' }, STATES.map((s) => h('li', null,
          badge(t(`state.${s}`), s), ' ', h('span', { class: 'num', dataset: { state: s } }, fmtNum(states[s] || 0)))))));
    const jobs = stats.jobs || {};
    replace(parts.gen,
      card(t('dash.images'), fmtNum(stats.today_images), t('dash.total_n', { n: fmtNum(stats.total_images) }), 'stat-images'),
      card(t('dash.videos'), fmtNum(stats.today_videos), t('dash.total_n', { n: fmtNum(stats.total_videos) }), 'stat-videos'),
      card(t('dash.errors'), fmtNum(stats.today_errors), t('dash.total_n', { n: fmtNum(stats.total_errors) }), 'stat-errors'),
      card(t('dash.running'), fmtNum(jobs.running), t('dash.queued_n', { n: fmtNum(jobs.queued) }), 'stat-jobs'));
  }
  if (failures) {
    replace(parts.failures, failures.length === 0 ? h('p', { class: 'muted' }, t('dash.noFailures'))
      : h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone' },
        h('caption', { class: 'visually-hidden' }, t('dash.failures')),
        h('thead', null, h('tr', null, [t('dash.when'), t('dash.job'), t('dash.model'), t('dash.code'), t('dash.reason')]
          .map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, failures.map((f) => h('tr', null,
          h('td', { 'data-label': t('dash.when') }, fmtTime(f.completed_at || f.created_at)),
          h('td', { 'data-label': t('dash.job') }, h('a', { href: `#/jobs/${encodeURIComponent(f.job_id)}` }, f.job_id)),
          h('td', { 'data-label': t('dash.model') }, f.model || '–'),
          h('td', { 'data-label': t('dash.code') }, f.error_code || '–'),
          h('td', { 'data-label': t('dash.reason'), class: 'wrap' }, f.error_message || '–')))))));
  }
  if (ready || stats) {
    // The window from /api/stats; /readyz's when that call failed.
    const up = (stats && stats.upstream) || (ready && ready.upstream) || {};
    const rows = Object.entries(up);
    const state = upstreamState(up);
    replace(parts.health,
      h('p', { id: 'upstream-state', dataset: { state } }, t('dash.upstream'), ' ',
        badge(t(`dash.up.${state}`), UPSTREAM_KIND[state]), ' ', h('span', { class: 'sub' }, t(`dash.upHint.${state}`))),
      ready ? h('p', null, badge(ready.status === 'ready' ? t('dash.ready') : t('dash.notReady'), ready.status === 'ready' ? 'active' : 'invalid'),
        ' ', t('dash.database', { s: ready.database || '?' })) : null,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table cards-on-phone', id: 'health' },
        h('caption', null, t('dash.window')),
        h('thead', null, h('tr', null, [t('dash.endpoint'), t('dash.calls'), t('dash.failed'), t('dash.rate'), t('dash.latency')]
          .map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, rows.map(([name, v]) => h('tr', { class: v.failure_rate > 0.2 ? 'row-bad' : null },
          h('th', { scope: 'row', 'data-label': t('dash.endpoint') }, name),
          h('td', { 'data-label': t('dash.calls'), class: 'num' }, fmtNum(v.calls)),
          h('td', { 'data-label': t('dash.failed'), class: 'num' }, fmtNum(v.failures)),
          h('td', { 'data-label': t('dash.rate'), class: 'num' }, fmtNum(v.failure_rate, { style: 'percent', maximumFractionDigits: 1 })),
          h('td', { 'data-label': t('dash.latency'), class: 'num' }, fmtNum(v.latency_ms, { maximumFractionDigits: 0 }))))))));
  }
}

export default {
  id: 'dashboard',
  nav: 'nav.dashboard',
  messages: {
    en: {
      'nav.dashboard': 'Dashboard',
      'dash.title': 'Dashboard',
      'dash.tokens': 'Accounts',
      'dash.total': 'Tokens',
      'dash.selectable': 'Selectable now',
      'dash.selectableHint': 'active, not cooling, not expired',
      'dash.byState': 'By state',
      'dash.generation': 'Generation (today, UTC)',
      'dash.images': 'Images today',
      'dash.videos': 'Videos today',
      'dash.errors': 'Errors today',
      'dash.total_n': '{n} in all',
      'dash.running': 'Jobs running',
      'dash.queued_n': '{n} queued',
      'dash.failures': 'Recent failures',
      'dash.noFailures': 'No failed job.',
      'dash.when': 'When',
      'dash.job': 'Job',
      'dash.model': 'Model',
      'dash.code': 'Code',
      'dash.reason': 'Reason',
      'dash.health': 'Upstream health',
      'dash.ready': 'ready',
      'dash.notReady': 'not ready',
      'dash.database': 'database: {s}',
      'dash.window': 'Calls to Sora over the last five minutes',
      'dash.endpoint': 'Endpoint',
      'dash.calls': 'Calls',
      'dash.failed': 'Failures',
      'dash.rate': 'Failure rate',
      'dash.latency': 'Latency (ms)',
      'dash.live': 'Refreshed every 5 seconds.',
      'dash.upstream': 'Sora:',
      'dash.up.idle': 'no calls',
      'dash.up.ok': 'ok',
      'dash.up.degraded': 'degraded',
      'dash.up.down': 'down',
      'dash.upHint.idle': 'no call to Sora in the last five minutes',
      'dash.upHint.ok': 'no endpoint fails more than 20% of its calls',
      'dash.upHint.degraded': 'an endpoint fails more than 20% of its calls',
      'dash.upHint.down': 'half or more of the calls failed',
    },
    'zh-CN': {
      'nav.dashboard': '概览',
      'dash.title': '概览',
      'dash.tokens': '账号',
      'dash.total': 'Token 总数',
      'dash.selectable': '当前可用',
      'dash.selectableHint': '活跃、未冷却、未过期',
      'dash.byState': '按状态',
      'dash.generation': '生成（今日，UTC）',
      'dash.images': '今日图片',
      'dash.videos': '今日视频',
      'dash.errors': '今日错误',
      'dash.total_n': '累计 {n}',
      'dash.running': '运行中的任务',
      'dash.queued_n': '排队 {n}',
      'dash.failures': '最近失败',
      'dash.noFailures': '没有失败的任务。',
      'dash.when': '时间',
      'dash.job': '任务',
      'dash.model': '模型',
      'dash.code': '错误码',
      'dash.reason': '原因',
      'dash.health': '上游状态',
      'dash.ready': '就绪',
      'dash.notReady': '未就绪',
      'dash.database': '数据库：{s}',
      'dash.window': '最近五分钟对 Sora 的调用',
      'dash.endpoint': '接口',
      'dash.calls': '调用',
      'dash.failed': '失败',
      'dash.rate': '失败率',
      'dash.latency': '延迟（毫秒）',
      'dash.live': '每 5 秒自动刷新。',
      'dash.upstream': 'Sora：',
      'dash.up.idle': '无调用',
      'dash.up.ok': '正常',
      'dash.up.degraded': '降级',
      'dash.up.down': '不可用',
      'dash.upHint.idle': '最近五分钟没有调用 Sora',
      'dash.upHint.ok': '没有接口的失败率超过 20%',
      'dash.upHint.degraded': '有接口的失败率超过 20%',
      'dash.upHint.down': '一半或更多的调用失败',
    },
  },
  mount(box) {
    const status = h('p', { class: 'muted', role: 'status', id: 'dash-updated' }, t('common.loading'));
    const parts = {
      tokens: h('div', { class: 'stats', id: 'dash-tokens' }),
      gen: h('div', { class: 'stats', id: 'dash-gen' }),
      failures: h('div', { id: 'dash-failures' }),
      health: h('div', { id: 'dash-health' }),
    };
    replace(box,
      h('div', { class: 'page-head' }, h('h1', null, t('dash.title')), h('p', { class: 'muted' }, t('dash.live'))),
      status,
      h('section', { 'aria-labelledby': 'dash-h-tokens' }, h('h2', { id: 'dash-h-tokens' }, t('dash.tokens')), parts.tokens),
      h('section', { 'aria-labelledby': 'dash-h-gen' }, h('h2', { id: 'dash-h-gen' }, t('dash.generation')), parts.gen),
      h('section', { 'aria-labelledby': 'dash-h-fail' }, h('h2', { id: 'dash-h-fail' }, t('dash.failures')), parts.failures),
      h('section', { 'aria-labelledby': 'dash-h-health' }, h('h2', { id: 'dash-h-health' }, t('dash.health')), parts.health));
    return every(REFRESH_MS, async () => {
      const [stats, failures, ready] = await Promise.allSettled([
        api.get('/api/stats'),
        api.get('/api/tasks?status=failed&limit=8'),
        api.get('/readyz?verbose=1', { auth: false }).catch((e) => (e.body && e.body.status ? e.body : Promise.reject(e))),
      ]);
      render(parts, stats.value, failures.value && failures.value.tasks, ready.value);
      const bad = [stats, failures, ready].find((x) => x.status === 'rejected');
      status.textContent = bad ? errorText(bad.reason) : t('common.updated', { time: fmtTime(new Date().toISOString()) });
      status.classList.toggle('form-error', Boolean(bad));
    });
  },
};
