// The v1 API client. The token lives in sessionStorage (gone when the tab
// closes) and travels only in the X-Auth-Token header: no cookie, so a
// page on another origin cannot make the browser call the API as the user.
export const PROVIDER = 'cf56bd3e-97a7-4078-b6d5-f36246333fd9';
const KEY = 'cairn.session';

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}

export function setSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s)); else sessionStorage.removeItem(KEY);
}

export class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// unauthorized is called on a 401 (expired or revoked token).
let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

async function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  const s = session();
  if (s && s.token) headers['X-Auth-Token'] = s.token;
  const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (!r.ok) {
    let msg = r.statusText;
    try {
      const f = Object.values(await r.json())[0];
      if (f && f.message) msg = f.message;
    } catch { /* not a fault body */ }
    if (r.status === 401 && path !== '/v1/auth/tokens') unauthorized();
    throw new APIError(r.status, msg);
  }
  return r;
}

// call sends a JSON request and returns the decoded answer (null if none).
export async function call(method, path, body) {
  const r = await send(method, path, body);
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

// blob fetches a download (the token goes in the header, never the URL).
export async function blob(path) {
  const r = await send('GET', path);
  return r.blob();
}

// all pages through a Karbor list (limit/marker) and returns every item,
// stopping after max items.
export async function all(path, key, max = 20000) {
  const out = [];
  let marker = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = (await call('GET', `${path}${sep}limit=1000${marker ? '&marker=' + encodeURIComponent(marker) : ''}`))[key];
    out.push(...page);
    if (page.length < 1000 || out.length >= max) return out;
    marker = page[page.length - 1].id;
  }
}

export const enc = encodeURIComponent;
