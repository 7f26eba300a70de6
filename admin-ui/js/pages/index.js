// pages/index.js: the page table. One row per page, in navigation order;
// the first is the start page. A page is one module whose default export
// is {id, nav, messages, mount}:
//   id        the route (#/<id>) and the page's element id (page-<id>);
//   nav       the message key of its navigation entry;
//   messages  {en: {...}, 'zh-CN': {...}}, registered at start;
//   mount(box, app)  renders into `box`; returns a cleanup function (timers,
//             listeners) called when another page replaces it.
// Adding a page is its module plus one row here.
import dashboard from './dashboard.js';
import tokens from './tokens.js';
import jobs from './jobs.js';
import logs from './logs.js';
import keys from './keys.js';
import webhooks from './webhooks.js';
import characters from './characters.js';
import settings from './settings.js';

export const pages = [dashboard, tokens, keys, jobs, logs, webhooks, characters, settings];
