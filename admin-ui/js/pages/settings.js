// Settings: every runtime setting of the admin API, one form per route
// family (general, token upkeep, cache, proxy with its test, watermark-
// free, timeouts), plus the API key (named key 1) and the administrator's
// password.
// A form sends only what changed; a value the server refuses is shown
// next to its field (the "param" of the answer).
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import * as api from '../api.js';
import { field, formError, showError, clearErrors, busy, toast, errorText, button } from '../ui.js';

// One settings form. spec: id, title, lead, fields (field() specs, with
// `key` = the value's name in load()'s answer when it differs), load()
// -> {name: value}, save(changed, all) (throws ApiError), extra(form).
function section(spec) {
  const fields = spec.fields.map((f) => Object.assign(field(f), { key: f.key || f.name, aliases: f.aliases }));
  const area = formError();
  let initial = {};
  const form = h('form', { class: 'card settings-form', id: `set-${spec.id}`, novalidate: true, 'aria-labelledby': `set-${spec.id}-h` },
    h('h2', { id: `set-${spec.id}-h` }, spec.title),
    spec.lead ? h('p', { class: 'muted' }, spec.lead) : null,
    h('div', { class: 'form-grid' }, fields.map((f) => f.el)),
    area,
    h('div', { class: 'actions' }, spec.extra ? spec.extra(fields) : null,
      h('button', { type: 'submit', class: 'btn btn-primary' }, spec.submit || t('common.save'))));
  const fill = async () => {
    if (!spec.load) return;
    try {
      const v = await spec.load();
      initial = {};
      for (const f of fields) {
        if (!(f.key in v)) continue;
        const val = v[f.key];
        if (f.input.type === 'checkbox') f.input.checked = Boolean(val);
        else f.input.value = val === null || val === undefined ? '' : String(val);
        initial[f.name] = f.value();
      }
    } catch (e) {
      if (e.status !== 401) { area.textContent = errorText(e); area.hidden = false; }
    }
  };
  form.addEventListener('submit', busy(form, async () => {
    clearErrors(fields, area);
    const all = {};
    const changed = {};
    for (const f of fields) {
      const v = f.value();
      if (f.input.type === 'number' && v === null) {
        f.setError(t('set.number'));
        f.input.focus();
        return;
      }
      all[f.name] = v;
      if (!(f.name in initial) || initial[f.name] !== v) changed[f.name] = v;
    }
    if (spec.check) {
      const bad = spec.check(all, fields);
      if (bad) return;
    }
    if (Object.keys(changed).length === 0 && !spec.always) {
      toast(t('set.unchanged'));
      return;
    }
    try {
      await spec.save(changed, all);
      toast(spec.done || t('common.saved'), 'ok');
      if (spec.after) spec.after(fields);
      await fill();
    } catch (e) {
      showError(fields, area, e);
    }
  }));
  return { form, fill, fields, area };
}

const num = (name, label, min, max, hint) => ({ name, label, type: 'number', min, max, hint: hint || t('set.range', { min, max }) });

export default {
  id: 'settings',
  nav: 'nav.settings',
  messages: {
    en: {
      'nav.settings': 'Settings',
      'set.title': 'Settings',
      'set.lead': 'Changes apply to every worker within a second.',
      'set.range': '{min} to {max}',
      'set.number': 'Enter a number.',
      'set.unchanged': 'Nothing changed.',
      'set.general': 'General',
      'set.log_level': 'Log level',
      'set.log.conf': 'as in the configuration file',
      'set.selection_policy': 'Token selection',
      'set.pol.least_busy': 'least busy first',
      'set.pol.round_robin': 'round robin',
      'set.pol.random': 'random',
      'set.error_ban_threshold': 'Consecutive errors before a token is disabled (0: never)',
      'set.queue_timeout': 'Seconds a job waits for a free token',
      'set.session_ttl': 'Admin session lifetime (seconds)',
      'set.videos_default_mode': 'Default answer of /v1/videos',
      'set.mode.sync': 'when done (sync)',
      'set.mode.async': 'at once (async)',
      'set.upkeep': 'Token upkeep',
      'set.upkeepLead': 'Background refresh of access tokens and video quotas.',
      'set.at_auto_refresh_enabled': 'AT auto-refresh',
      'set.at_refresh_window': 'Refresh tokens expiring within (seconds)',
      'set.quota_refresh_interval': 'Re-read video quotas every (seconds, 0: never)',
      'set.cache': 'Media cache',
      'set.cacheLead': 'Results downloaded into the cache directory and served under /tmp/.',
      'set.cache_enabled': 'Cache results',
      'set.cache_timeout': 'Keep files for (seconds)',
      'set.cache_base_url': 'Public base URL of /tmp/ links',
      'set.cache_base_hint': 'http(s)://…; empty: the address the client used',
      'set.effective': 'Links now start with: {url}',
      'set.proxy': 'Upstream proxy',
      'set.proxyLead': 'Used by every Sora call of a token without its own proxy.',
      'set.proxy_enabled': 'Use the proxy',
      'set.proxy_url': 'Proxy URL',
      'set.proxy_hint': 'http://, https://, socks5:// or socks5h://',
      'set.proxyTest': 'Test the proxy',
      'set.proxyTesting': 'Testing…',
      'set.wm': 'Watermark-free videos',
      'set.wmLead': 'Publish finished videos, fetch them without the watermark, then unpublish.',
      'set.watermark_free_enabled': 'Watermark-free',
      'set.parse_method': 'Method',
      'set.pm.third_party': 'third-party CDN',
      'set.pm.custom': 'custom parse server',
      'set.third_party_url': 'Third-party URL template',
      'set.third_party_hint': 'must contain {post_id}',
      'set.custom_parse_url': 'Custom parse server URL',
      'set.custom_parse_token': 'Custom parse server token',
      'set.timeouts': 'Generation time limits',
      'set.image_timeout': 'Image jobs (seconds)',
      'set.video_timeout': 'Video jobs (seconds)',
      'set.apikey': 'API key (key 1)',
      'set.apikeyLead': 'This changes named key 1, the first key ("default" unless renamed), which clients send as "Authorization: Bearer …". Only a keyed hash is stored: the current key cannot be shown.',
      'set.apikeyKeys': 'Every key, with its limits and usage, is on the API keys page.',
      'set.new_api_key': 'New API key',
      'set.apikeyHint': '8 to 256 printable characters, no spaces',
      'set.apikey_confirm': 'New API key again',
      'set.apikeyMismatch': 'The two keys differ.',
      'set.apikeyDone': 'API key replaced.',
      'set.account': 'Administrator',
      'set.accountLead': 'Changing the password ends every session; this one logs in again at once.',
      'set.username': 'User name',
      'set.old_password': 'Current password',
      'set.new_password': 'New password',
      'set.pwHint': 'at least 8 characters',
      'set.pw_confirm': 'New password again',
      'set.pwSubmit': 'Change password',
      'set.pwDone': 'Password changed; every other session has ended.',
    },
    'zh-CN': {
      'nav.settings': '系统配置',
      'set.title': '系统配置',
      'set.lead': '修改在一秒内对所有工作进程生效。',
      'set.range': '{min} 至 {max}',
      'set.number': '请输入数字。',
      'set.unchanged': '没有修改。',
      'set.general': '常规',
      'set.log_level': '日志级别',
      'set.log.conf': '与配置文件一致',
      'set.selection_policy': 'Token 选择策略',
      'set.pol.least_busy': '最空闲优先',
      'set.pol.round_robin': '轮询',
      'set.pol.random': '随机',
      'set.error_ban_threshold': '连续错误多少次后禁用 Token（0：从不）',
      'set.queue_timeout': '任务等待空闲 Token 的秒数',
      'set.session_ttl': '管理会话有效期（秒）',
      'set.videos_default_mode': '/v1/videos 的默认应答方式',
      'set.mode.sync': '完成后返回（同步）',
      'set.mode.async': '立即返回（异步）',
      'set.upkeep': 'Token 维护',
      'set.upkeepLead': '后台刷新 Access Token 和视频额度。',
      'set.at_auto_refresh_enabled': '自动刷新 AT',
      'set.at_refresh_window': '刷新将在多少秒内过期的 Token',
      'set.quota_refresh_interval': '每隔多少秒重新读取视频额度（0：从不）',
      'set.cache': '媒体缓存',
      'set.cacheLead': '生成结果下载到缓存目录，并通过 /tmp/ 提供。',
      'set.cache_enabled': '缓存结果',
      'set.cache_timeout': '文件保留时间（秒）',
      'set.cache_base_url': '/tmp/ 链接的公开基础地址',
      'set.cache_base_hint': 'http(s)://…；留空使用客户端访问的地址',
      'set.effective': '当前链接以此开头：{url}',
      'set.proxy': '上游代理',
      'set.proxyLead': '没有单独代理的 Token 调用 Sora 时使用。',
      'set.proxy_enabled': '启用代理',
      'set.proxy_url': '代理地址',
      'set.proxy_hint': 'http://、https://、socks5:// 或 socks5h://',
      'set.proxyTest': '测试代理',
      'set.proxyTesting': '测试中…',
      'set.wm': '去水印视频',
      'set.wmLead': '发布完成的视频，获取无水印版本后再取消发布。',
      'set.watermark_free_enabled': '去水印',
      'set.parse_method': '方式',
      'set.pm.third_party': '第三方 CDN',
      'set.pm.custom': '自定义解析服务器',
      'set.third_party_url': '第三方地址模板',
      'set.third_party_hint': '必须包含 {post_id}',
      'set.custom_parse_url': '自定义解析服务器地址',
      'set.custom_parse_token': '自定义解析服务器密钥',
      'set.timeouts': '生成超时',
      'set.image_timeout': '图片任务（秒）',
      'set.video_timeout': '视频任务（秒）',
      'set.apikey': 'API Key（Key 1）',
      'set.apikeyLead': '这里修改的是第一个命名 Key，即 Key 1（未改名时名为 "default"），客户端以 "Authorization: Bearer …" 发送。只保存带密钥的哈希，当前的 Key 无法显示。',
      'set.apikeyKeys': '所有 Key 及其限制和用量见 API Key 页面。',
      'set.new_api_key': '新的 API Key',
      'set.apikeyHint': '8 至 256 个可打印字符，不含空格',
      'set.apikey_confirm': '再次输入新的 API Key',
      'set.apikeyMismatch': '两次输入的 Key 不一致。',
      'set.apikeyDone': 'API Key 已更换。',
      'set.account': '管理员',
      'set.accountLead': '修改密码会结束所有会话；当前会话会立即重新登录。',
      'set.username': '用户名',
      'set.old_password': '当前密码',
      'set.new_password': '新密码',
      'set.pwHint': '至少 8 个字符',
      'set.pw_confirm': '再次输入新密码',
      'set.pwSubmit': '修改密码',
      'set.pwDone': '密码已修改，其他会话均已失效。',
    },
  },

  mount(box, app) {
    let effective = null;
    const general = section({
      id: 'general',
      title: t('set.general'),
      fields: [
        { name: 'log_level', label: t('set.log_level'), type: 'select',
          options: [['', t('set.log.conf')], ...['error', 'warn', 'notice', 'info', 'debug'].map((x) => [x, x])] },
        { name: 'selection_policy', label: t('set.selection_policy'), type: 'select',
          options: ['least_busy', 'round_robin', 'random'].map((x) => [x, t(`set.pol.${x}`)]) },
        num('error_ban_threshold', t('set.error_ban_threshold'), 0, 1000),
        num('queue_timeout', t('set.queue_timeout'), 0, 600),
        num('session_ttl', t('set.session_ttl'), 300, 2592000),
        { name: 'videos_default_mode', label: t('set.videos_default_mode'), type: 'select',
          options: ['sync', 'async'].map((x) => [x, t(`set.mode.${x}`)]) },
      ],
      load: () => api.get('/api/admin/config'),
      save: (changed) => api.post('/api/admin/config', changed),
    });
    const upkeep = section({
      id: 'upkeep',
      title: t('set.upkeep'),
      lead: t('set.upkeepLead'),
      fields: [
        { name: 'at_auto_refresh_enabled', label: t('set.at_auto_refresh_enabled'), type: 'switch' },
        num('at_refresh_window', t('set.at_refresh_window'), 300, 2592000),
        num('quota_refresh_interval', t('set.quota_refresh_interval'), 0, 604800),
      ],
      load: () => api.get('/api/admin/config'),
      save: (changed) => api.post('/api/admin/config', changed),
    });
    const cache = section({
      id: 'cache',
      title: t('set.cache'),
      lead: t('set.cacheLead'),
      fields: [
        { name: 'enabled', label: t('set.cache_enabled'), type: 'switch' },
        num('timeout', t('set.cache_timeout'), 60, 86400),
        { name: 'base_url', label: t('set.cache_base_url'), type: 'url', hint: t('set.cache_base_hint') },
      ],
      load: async () => {
        const c = (await api.get('/api/cache/config')).config;
        if (effective) effective.textContent = t('set.effective', { url: c.effective_base_url });
        return c;
      },
      // One route per value, as the reference's API has it.
      save: async (changed) => {
        if ('enabled' in changed) await api.post('/api/cache/enabled', { enabled: changed.enabled });
        if ('timeout' in changed) await api.post('/api/cache/config', { timeout: changed.timeout });
        if ('base_url' in changed) await api.post('/api/cache/base-url', { base_url: changed.base_url.trim() });
      },
    });
    effective = h('p', { class: 'muted', id: 'set-cache-effective' });
    cache.form.insertBefore(effective, cache.area);
    const proxyOut = h('p', { class: 'notice', role: 'status', id: 'set-proxy-result', hidden: true });
    const proxy = section({
      id: 'proxy',
      title: t('set.proxy'),
      lead: t('set.proxyLead'),
      fields: [
        { name: 'proxy_enabled', label: t('set.proxy_enabled'), type: 'switch' },
        { name: 'proxy_url', label: t('set.proxy_url'), type: 'url', hint: t('set.proxy_hint') },
      ],
      load: () => api.get('/api/proxy/config'),
      save: (changed, all) => api.post('/api/proxy/config', { proxy_enabled: all.proxy_enabled, proxy_url: all.proxy_url.trim() }),
      extra: (fields) => button(t('set.proxyTest'), async (e) => {
        const btn = e.currentTarget;
        const url = fields.find((f) => f.name === 'proxy_url');
        clearErrors(fields, null);
        btn.disabled = true;
        proxyOut.hidden = false;
        proxyOut.textContent = t('set.proxyTesting');
        try {
          const r = await api.post('/api/proxy/test', { proxy_url: url.value().trim() });
          proxyOut.textContent = `${r.message} (${r.elapsed_ms} ms)`;
          proxyOut.classList.toggle('form-error', !r.success);
        } catch (err) {
          proxyOut.hidden = true;
          showError(fields, null, err, () => 'proxy_url');
        }
        btn.disabled = false;
      }),
    });
    proxy.form.insertBefore(proxyOut, proxy.area);
    const wm = section({
      id: 'watermark',
      title: t('set.wm'),
      lead: t('set.wmLead'),
      fields: [
        { name: 'watermark_free_enabled', label: t('set.watermark_free_enabled'), type: 'switch' },
        { name: 'parse_method', label: t('set.parse_method'), type: 'select',
          options: ['third_party', 'custom'].map((x) => [x, t(`set.pm.${x}`)]) },
        { name: 'third_party_url', label: t('set.third_party_url'), type: 'url', hint: t('set.third_party_hint') },
        { name: 'custom_parse_url', label: t('set.custom_parse_url'), type: 'url' },
        { name: 'custom_parse_token', label: t('set.custom_parse_token'), type: 'password', autocomplete: 'off' },
      ],
      load: () => api.get('/api/watermark-free/config'),
      save: (changed, all) => api.post('/api/watermark-free/config', Object.assign({ watermark_free_enabled: all.watermark_free_enabled }, changed)),
    });
    const timeouts = section({
      id: 'timeouts',
      title: t('set.timeouts'),
      fields: [num('image_timeout', t('set.image_timeout'), 60, 3600), num('video_timeout', t('set.video_timeout'), 60, 7200)],
      load: async () => (await api.get('/api/generation/timeout')).config,
      save: (changed) => api.post('/api/generation/timeout', changed),
    });
    const apikey = section({
      id: 'apikey',
      title: t('set.apikey'),
      lead: t('set.apikeyLead'),
      fields: [
        { name: 'new_api_key', label: t('set.new_api_key'), type: 'password', autocomplete: 'new-password', hint: t('set.apikeyHint') },
        { name: 'confirm_key', label: t('set.apikey_confirm'), type: 'password', autocomplete: 'new-password' },
      ],
      always: true,
      check: (all, fields) => {
        if (all.new_api_key !== all.confirm_key) {
          const f = fields.find((x) => x.name === 'confirm_key');
          f.setError(t('set.apikeyMismatch'));
          f.input.focus();
          return true;
        }
        return false;
      },
      save: (changed, all) => api.post('/api/admin/apikey', { new_api_key: all.new_api_key }),
      done: t('set.apikeyDone'),
      after: (fields) => { for (const f of fields) f.input.value = ''; },
    });
    apikey.form.insertBefore(h('p', { class: 'muted' }, h('a', { href: '#/keys', id: 'set-apikey-keys' }, t('set.apikeyKeys'))),
      apikey.form.querySelector('.form-grid'));
    const account = section({
      id: 'account',
      title: t('set.account'),
      lead: t('set.accountLead'),
      submit: t('set.pwSubmit'),
      fields: [
        { name: 'username', label: t('set.username'), autocomplete: 'username', key: 'admin_username' },
        { name: 'old_password', label: t('set.old_password'), type: 'password', autocomplete: 'current-password' },
        { name: 'new_password', label: t('set.new_password'), type: 'password', autocomplete: 'new-password', hint: t('set.pwHint') },
        { name: 'confirm_password', label: t('set.pw_confirm'), type: 'password', autocomplete: 'new-password' },
      ],
      always: true,
      load: () => api.get('/api/admin/config'),
      check: (all, fields) => {
        if (all.new_password !== all.confirm_password) {
          const f = fields.find((x) => x.name === 'confirm_password');
          f.setError(t('pw.mismatch'));
          f.input.focus();
          return true;
        }
        return false;
      },
      save: async (changed, all) => {
        const body = { old_password: all.old_password, new_password: all.new_password };
        if ('username' in changed) body.username = all.username.trim();
        await api.post('/api/admin/password', body);
        // Every session has ended, this one too: in again at once.
        const r = await api.post('/api/login', { username: all.username.trim(), password: all.new_password }, { auth: false });
        api.setSession(r.token);
      },
      done: t('set.pwDone'),
      after: (fields) => { for (const f of fields) if (f.input.type === 'password') f.input.value = ''; },
    });
    const all = [general, upkeep, cache, proxy, wm, timeouts, apikey, account];
    replace(box,
      h('div', { class: 'page-head' }, h('h1', null, t('set.title')), h('p', { class: 'muted' }, t('set.lead'))),
      h('div', { class: 'settings' }, all.map((s) => s.form)));
    for (const s of all) s.fill();
    void app;
  },
};
