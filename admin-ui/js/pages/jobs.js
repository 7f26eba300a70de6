// Generation jobs (GET /api/tasks): filters, live progress of running
// jobs, export, and a detail view with the prompt, every stage the job
// reported (its recorded history), the upstream task id and the result
// (an image or a playable video when the daemon's cache serves it).
import { h, replace } from '../dom.js';
import { t, fmtNum, fmtTime } from '../i18n.js';
import * as api from '../api.js';
import { badge, dialog, every, sameOrigin } from '../ui.js';
import { recordsView, recordMessages } from '../records.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const LIVE = ['queued', 'submitting', 'running'];
const KIND = { queued: 'neutral', submitting: 'neutral', running: 'cooling', succeeded: 'active', failed: 'invalid', cancelled: 'disabled' };

function statusBadge(s) {
  const label = t(`job.s.${s}`);
  return badge(label === `job.s.${s}` ? s : label, KIND[s] || 'neutral');
}

function progressEl(r) {
  const pct = Math.max(0, Math.min(100, Number(r.progress) || 0));
  return h('span', { class: 'progress-cell' },
    h('progress', { max: 100, value: pct, 'aria-label': t('job.progressOf', { job: r.job_id }) }),
    h('span', { class: 'num' }, `${fmtNum(pct, { maximumFractionDigits: 0 })}%`));
}

function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  return t('job.secs', { n: fmtNum(ms / 1000, { maximumFractionDigits: 1 }) });
}

// The stages of a row from before the recorded history: what the row
// tells of, in order, each done, current or to come.
function derivedStages(r) {
  const live = LIVE.includes(r.status);
  const ended = !live;
  const submitted = Boolean(r.upstream_task_id);
  const list = [
    { key: 'accepted', state: 'done', at: r.created_at },
    { key: 'submitted', state: submitted ? 'done' : live ? 'current' : 'skipped', note: r.upstream_task_id },
    {
      key: 'generating',
      state: r.status === 'succeeded' ? 'done' : submitted && live ? 'current' : submitted ? 'done' : 'skipped',
      note: `${fmtNum(Number(r.progress) || 0, { maximumFractionDigits: 0 })}%`,
    },
    { key: ended ? r.status : 'finished', state: ended ? 'done' : 'pending', at: r.completed_at, note: r.error_code },
  ];
  return list.map((s) => h('li', { class: `stage-${s.state}`, dataset: { stage: s.key } },
    h('span', { class: 'stage-name' }, t(`job.st.${s.key}`)),
    s.at ? h('span', { class: 'sub' }, fmtTime(s.at)) : null,
    s.note && s.state !== 'skipped' && s.state !== 'pending' ? h('span', { class: 'sub mono' }, s.note) : null));
}

// A name from the table, or the server's word when it has none.
function label(prefix, v) {
  const l = t(`${prefix}.${v}`);
  return l === `${prefix}.${v}` ? v : l;
}

// The recorded history (GET /api/tasks?job_id= `stages`): every progress
// event the job reported, the last one current while it runs, then its
// end. A run of percentages is one entry; while it runs, the row's
// progress is the newer one.
function recordedStages(r) {
  const live = LIVE.includes(r.status);
  const n = r.stages.length;
  const items = r.stages.map((e, i) => {
    const last = i === n - 1;
    let pct = e.progress;
    if (last && live && e.stage === 'generation' && e.status === 'processing') pct = Number(r.progress) || pct;
    const meta = [h('span', { class: 'sub' }, fmtTime(e.t / 1000))];
    if (pct !== undefined && pct !== null) meta.push(h('span', { class: 'sub num' }, `${fmtNum(pct, { maximumFractionDigits: 0 })}%`));
    if (e.message) meta.push(h('span', { class: 'sub wrap' }, e.message));
    return h('li', { class: last && live ? 'stage-current' : 'stage-done', dataset: { stage: `${e.stage}.${e.status}` } },
      h('span', { class: 'stage-name' }, `${label('job.sg', e.stage)}: ${label('job.ss', e.status)}`),
      ...meta.flatMap((m, j) => (j === 0 ? [m] : [' · ', m])));
  });
  if (!live) {
    items.push(h('li', { class: 'stage-done', dataset: { stage: r.status } },
      h('span', { class: 'stage-name' }, t(`job.st.${r.status}`)),
      r.completed_at ? h('span', { class: 'sub' }, fmtTime(r.completed_at)) : null,
      r.error_code ? h('span', { class: 'sub mono' }, r.error_code) : null));
  }
  return items;
}

function stages(r) {
  return Array.isArray(r.stages) && r.stages.length > 0 ? recordedStages(r) : derivedStages(r);
}

function media(urls) {
  if (!Array.isArray(urls) || urls.length === 0) return h('p', { class: 'muted' }, t('job.noResult'));
  return h('ul', { class: 'results' }, urls.map((u, i) => {
    const local = sameOrigin(u);
    const ext = (/\.([a-z0-9]+)(?:\?|#|$)/i.exec(u) || [])[1] || '';
    let view = null;
    if (local && /^(png|jpe?g|webp|gif)$/i.test(ext)) {
      view = h('img', { src: u, alt: t('job.resultN', { n: i + 1 }), class: 'result-media', loading: 'lazy' });
    } else if (local && /^(mp4|webm|mov)$/i.test(ext)) {
      view = h('video', { src: u, controls: true, preload: 'metadata', class: 'result-media', 'aria-label': t('job.resultN', { n: i + 1 }) });
    }
    const safe = /^https?:\/\//i.test(u) || u.startsWith('/');
    return h('li', null, view,
      safe ? h('a', { href: u, target: '_blank', rel: 'noopener noreferrer', class: 'mono wrap' }, u) : h('span', { class: 'mono wrap' }, u),
      local ? null : h('span', { class: 'sub' }, t('job.external')));
  }));
}

function detailBody(r) {
  const row = (label, value) => [h('dt', null, label), h('dd', null, value === null || value === undefined || value === '' ? '–' : value)];
  return [
    h('dl', { class: 'details' },
      row(t('job.status'), statusBadge(r.status)),
      row(t('job.progress'), progressEl(r)),
      row(t('job.model'), r.model),
      row(t('job.mode'), r.mode),
      row(t('job.token'), r.token_id ? `#${r.token_id}` : null),
      row(t('job.upstream'), r.upstream_task_id ? h('span', { class: 'mono' }, r.upstream_task_id) : null),
      row(t('job.created'), fmtTime(r.created_at)),
      row(t('job.updated'), fmtTime(r.updated_at)),
      row(t('job.completed'), fmtTime(r.completed_at)),
      row(t('job.duration'), duration(r.duration_ms)),
      row(t('job.errorCode'), r.error_code),
      row(t('job.errorMessage'), r.error_message ? h('span', { class: 'wrap' }, r.error_message) : null)),
    h('h3', null, t('job.prompt')),
    h('pre', { class: 'prompt', id: 'job-prompt' }, r.prompt || ''),
    h('h3', null, t('job.stages')),
    h('ol', { class: 'stages', id: 'job-stages', dataset: { recorded: Array.isArray(r.stages) ? 'yes' : 'no' } }, stages(r)),
    h('h3', null, t('job.result')),
    media(r.result_urls),
  ];
}

// The detail dialog: the row of the list at once, then its own (with the
// recorded stages, which lists leave out); follows it while the job runs.
function openDetail(first) {
  let row = first;
  let loaded = Array.isArray(first.stages) || first.stages === null;
  const d = dialog({ title: t('job.detailTitle', { job: row.job_id }), body: detailBody(row), wide: true, onClose: () => stop() });
  d.el.id = 'job-detail';
  const stop = every(2000, async () => {
    if (loaded && !LIVE.includes(row.status)) return;
    const res = await api.get(`/api/tasks${api.query({ job_id: row.job_id })}`);
    const fresh = res.tasks && res.tasks[0];
    loaded = true;
    if (fresh && JSON.stringify(fresh) !== JSON.stringify(row)) {
      row = fresh;
      replace(d.body, detailBody(row));
    }
    d.el.dataset.loaded = 'yes';
  });
  return d;
}

export default {
  id: 'jobs',
  nav: 'nav.jobs',
  messages: {
    en: Object.assign({}, recordMessages.en, {
      'nav.jobs': 'Jobs',
      'job.title': 'Generation jobs',
      'job.caption': 'Generation jobs, newest first',
      'job.s.queued': 'queued',
      'job.s.submitting': 'submitting',
      'job.s.running': 'running',
      'job.s.succeeded': 'succeeded',
      'job.s.failed': 'failed',
      'job.s.cancelled': 'cancelled',
      'job.created': 'Created',
      'job.job': 'Job',
      'job.model': 'Model',
      'job.mode': 'Mode',
      'job.token': 'Token',
      'job.status': 'Status',
      'job.progress': 'Progress',
      'job.progressOf': 'Progress of {job}',
      'job.duration': 'Duration',
      'job.errorCode': 'Error code',
      'job.errorMessage': 'Error',
      'job.secs': '{n} s',
      'job.upstream': 'Upstream task',
      'job.updated': 'Updated',
      'job.completed': 'Finished',
      'job.prompt': 'Prompt',
      'job.stages': 'Stages',
      'job.st.accepted': 'Accepted',
      'job.st.submitted': 'Submitted to Sora',
      'job.st.generating': 'Generating',
      'job.st.finished': 'Finished',
      'job.st.succeeded': 'Succeeded',
      'job.st.failed': 'Failed',
      'job.st.cancelled': 'Cancelled',
      'job.sg.generation': 'Generation',
      'job.sg.upload': 'Image upload',
      'job.sg.watermark_free': 'Watermark-free',
      'job.sg.cache': 'Cache',
      'job.sg.storyboard': 'Storyboard',
      'job.sg.remix': 'Remix',
      'job.sg.error': 'Error',
      'job.ss.started': 'started',
      'job.ss.processing': 'processing',
      'job.ss.completed': 'completed',
      'job.ss.error': 'error',
      'job.result': 'Result',
      'job.noResult': 'No result.',
      'job.resultN': 'Result {n}',
      'job.external': 'Served elsewhere: not embedded here.',
      'job.detailTitle': 'Job {job}',
      'job.notFound': 'No job {job}.',
    }),
    'zh-CN': Object.assign({}, recordMessages['zh-CN'], {
      'nav.jobs': '生成任务',
      'job.title': '生成任务',
      'job.caption': '生成任务，最新的在前',
      'job.s.queued': '排队中',
      'job.s.submitting': '提交中',
      'job.s.running': '运行中',
      'job.s.succeeded': '成功',
      'job.s.failed': '失败',
      'job.s.cancelled': '已取消',
      'job.created': '创建时间',
      'job.job': '任务',
      'job.model': '模型',
      'job.mode': '模式',
      'job.token': 'Token',
      'job.status': '状态',
      'job.progress': '进度',
      'job.progressOf': '{job} 的进度',
      'job.duration': '耗时',
      'job.errorCode': '错误码',
      'job.errorMessage': '错误',
      'job.secs': '{n} 秒',
      'job.upstream': '上游任务',
      'job.updated': '更新时间',
      'job.completed': '完成时间',
      'job.prompt': '提示词',
      'job.stages': '阶段',
      'job.st.accepted': '已接收',
      'job.st.submitted': '已提交到 Sora',
      'job.st.generating': '生成中',
      'job.st.finished': '完成',
      'job.st.succeeded': '成功',
      'job.st.failed': '失败',
      'job.st.cancelled': '已取消',
      'job.sg.generation': '生成',
      'job.sg.upload': '图片上传',
      'job.sg.watermark_free': '去水印',
      'job.sg.cache': '缓存',
      'job.sg.storyboard': '分镜',
      'job.sg.remix': '混剪',
      'job.sg.error': '错误',
      'job.ss.started': '开始',
      'job.ss.processing': '处理中',
      'job.ss.completed': '完成',
      'job.ss.error': '出错',
      'job.result': '结果',
      'job.noResult': '没有结果。',
      'job.resultN': '结果 {n}',
      'job.external': '由其他地址提供，此处不嵌入显示。',
      'job.detailTitle': '任务 {job}',
      'job.notFound': '没有任务 {job}。',
    }),
  },
  mount(box, app) {
    const view = recordsView(box, {
      prefix: 'jobs',
      title: t('job.title'),
      caption: t('job.caption'),
      endpoint: '/api/tasks',
      rowsOf: (res) => res.tasks,
      live: 2000,
      statusOptions: STATUSES.map((s) => [s, t(`job.s.${s}`)]),
      columns: [
        { label: t('job.created'), render: (r) => fmtTime(r.created_at) },
        { label: t('job.job'), cls: 'mono', render: (r) => r.job_id },
        { label: t('job.model'), render: (r) => r.model || '–' },
        { label: t('job.token'), render: (r) => (r.token_id ? `#${r.token_id}` : '–') },
        { label: t('job.status'), render: (r) => statusBadge(r.status) },
        { label: t('job.progress'), render: progressEl },
        { label: t('job.duration'), render: (r) => duration(r.duration_ms) },
        { label: t('job.errorCode'), render: (r) => r.error_code || '' },
      ],
      exportColumns: [['id', 'id'], ['job_id', 'job_id'], ['created_at', 'created_at'], ['model', 'model'], ['mode', 'mode'],
        ['token_id', 'token_id'], ['status', 'status'], ['progress', 'progress'], ['upstream_task_id', 'upstream_task_id'],
        ['prompt', 'prompt'], ['result_urls', 'result_urls'], ['error_code', 'error_code'], ['error_message', 'error_message'],
        ['completed_at', 'completed_at'], ['duration_ms', 'duration_ms']],
      detail: openDetail,
    });
    // #/jobs/<job id>: open that job.
    const wanted = decodeURIComponent((app.route.split('/')[2] || ''));
    if (wanted) {
      api.get(`/api/tasks${api.query({ job_id: wanted })}`).then((res) => {
        if (res.tasks && res.tasks[0]) openDetail(res.tasks[0]);
        else app.toast(t('job.notFound', { job: wanted }), 'error');
      }).catch(() => {});
    }
    return () => view.stop();
  },
};
