// api.js: calls to the daemon's admin API. The session token lives in
// sessionStorage (this tab only, gone when it closes) and goes out as a
// bearer header; no cookie is ever involved, so another site cannot make
// the browser act with it. A 401 from any call but the login ends the
// session: the app returns to the login page with a message.

const STORE = 'sora2api.session';
let token = null;
let expiredHandler = null;

try { token = sessionStorage.getItem(STORE); } catch (_) { token = null; }

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const detail = body && typeof body === 'object'
      ? (typeof body.detail === 'string' ? body.detail
        : body.message || (body.error && body.error.message))
      : null;
    super(detail || fallback || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.param = body && typeof body.param === 'string' ? body.param : null;
  }
}

export function hasSession() {
  return token !== null;
}

export function setSession(t) {
  token = t;
  try {
    if (t) sessionStorage.setItem(STORE, t);
    else sessionStorage.removeItem(STORE);
  } catch (_) { /* storage refused: memory only */ }
}

export function onExpired(fn) {
  expiredHandler = fn;
}

// One call. `body` (an object) is sent as JSON. Resolves to the parsed
// answer, or to the Response itself with {raw: true}; rejects with an
// ApiError (status 0 when the daemon could not be reached).
export async function call(method, path, body, { raw = false, auth = true } = {}) {
  const headers = {};
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, null, e.message);
  }
  if (r.status === 401 && auth && path !== '/api/login') {
    const had = token !== null;
    setSession(null);
    if (had && expiredHandler) expiredHandler();
    throw new ApiError(401, await r.json().catch(() => null));
  }
  if (raw && r.ok) return r;
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (p, o) => call('GET', p, undefined, o);
export const post = (p, b, o) => call('POST', p, b === undefined ? {} : b, o);
export const put = (p, b) => call('PUT', p, b);
export const del = (p) => call('DELETE', p);

// A query string from an object, skipping empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Runs `fn` over `items`, `limit` at a time; `progress(done, total)`
// after each. Resolves to [{item, ok, value|error}] in input order.
export async function pool(items, limit, fn, progress) {
  const out = new Array(items.length);
  let next = 0;
  let done = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = { item: items[i], ok: true, value: await fn(items[i]) };
      } catch (e) {
        out[i] = { item: items[i], ok: false, error: e };
        if (e instanceof ApiError && e.status === 401) throw e;
      }
      done += 1;
      if (progress) progress(done, items.length);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
