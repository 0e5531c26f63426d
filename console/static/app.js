// The console's entry point: login, the router (location.hash) and the
// header. Views render into <main>.
import { call, session, setSession, onUnauthorized } from './api.js';
import { h, clear, toast } from './dom.js';
import { projectView } from './project.js';
import { adminView } from './admin.js';

const main = document.getElementById('main');
let stopView = () => {};

function header() {
  const s = session();
  const nav = document.getElementById('nav');
  const links = [];
  if (s) {
    if (s.project) links.push(h('a', { href: `#/project/${encodeURIComponent(s.project)}`, id: 'nav-project' }, 'Project'));
    if (s.admin) links.push(h('a', { href: '#/admin', id: 'nav-admin' }, 'All projects'));
    if (s.noauth) links.push(h('a', { href: '#/login', id: 'nav-switch' }, 'Switch project'));
  }
  clear(nav, links);
  document.getElementById('who').textContent = s ? `${s.user || 'noauth'}${s.project ? ' · ' + s.project : ''}${s.admin ? ' · admin' : ''}` : '';
  document.getElementById('logout').hidden = !s;
}

function loginView() {
  const err = h('p', { class: 'error', id: 'login-error' });
  const field = (label, name, type = 'text', value = '') => [h('label', { for: `login-${name}` }, label),
    h('input', { id: `login-${name}`, name, type, value, autocomplete: type === 'password' ? 'current-password' : 'on' })];
  const pw = h('form', { class: 'login', id: 'form-password' },
    field('User', 'username'), field('Password', 'password', 'password'), field('Project', 'project'), field('Domain', 'domain', 'text', 'Default'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'login-submit' }, 'Log in')));
  const tok = h('form', { class: 'login', id: 'form-token' },
    field('Token', 'token', 'password'), field('Project (admins: optional)', 'tproject'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Use token')));
  const picker = h('form', { class: 'login', id: 'form-noauth' },
    field('Project', 'noauth-project'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'login-noauth-submit' }, 'Open project')));
  const begin = (tokenInfo, project) => {
    const s = { token: tokenInfo.id || tokenInfo.token, user: tokenInfo.user_id, admin: tokenInfo.admin, noauth: tokenInfo.noauth,
      project: project || tokenInfo.project_id || '' };
    setSession(s);
    location.hash = s.project ? `#/project/${encodeURIComponent(s.project)}` : '#/admin';
  };
  pw.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(pw);
    try {
      const r = await call('POST', '/v1/auth/tokens', { auth: { username: f.get('username'), password: f.get('password'), project: f.get('project'), domain: f.get('domain') } });
      if (r.token.noauth) { err.textContent = 'This daemon runs without authentication: pick a project below.'; return; }
      begin(r.token);
    } catch (e) { err.textContent = e.message; }
  });
  tok.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(tok);
    setSession({ token: f.get('token') });
    try {
      const r = await call('GET', '/v1/auth/tokens');
      begin({ ...r.token, id: f.get('token') }, f.get('tproject') || r.token.project_id);
    } catch (e) { setSession(null); err.textContent = e.message; }
  });
  picker.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new FormData(picker).get('noauth-project').trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(p)) { err.textContent = 'A project ID is 1 to 64 letters, digits, - or _.'; return; }
    begin({ id: 'noauth', user_id: 'noauth', noauth: true, admin: false }, p);
  });
  const sections = [h('h2', {}, 'Log in'), err];
  // Which forms apply depends on the daemon's auth; ask it.
  call('POST', '/v1/auth/tokens', { auth: { username: '', password: '', project: '' } }).then((r) => {
    const noauth = r && r.token && r.token.noauth;
    clear(main, h('section', { id: 'login' }, sections, noauth
      ? [h('p', { class: 'muted' }, 'This daemon runs without authentication (noauth): every project is open to whoever reaches it.'), picker]
      : [pw, h('h2', {}, 'Or with a Keystone token'), tok]));
  }, () => clear(main, h('section', { id: 'login' }, sections, pw, h('h2', {}, 'Or with a Keystone token'), tok)));
}

function route() {
  stopView();
  stopView = () => {};
  header();
  const s = session();
  const m = location.hash.match(/^#\/(project)\/([^/]+)$|^#\/(admin)$/);
  if (!s || location.hash === '#/login') { loginView(); return; }
  if (m && m[1]) {
    const p = decodeURIComponent(m[2]);
    if (s.noauth && s.project !== p) { setSession({ ...s, project: p }); header(); }
    stopView = projectView(main, p);
  } else if (m && m[3]) {
    stopView = adminView(main);
  } else {
    location.hash = s.project ? `#/project/${encodeURIComponent(s.project)}` : '#/admin';
  }
}

onUnauthorized(() => {
  setSession(null);
  toast('Your session ended: log in again.', true);
  location.hash = '#/login';
});
document.getElementById('logout').addEventListener('click', () => {
  setSession(null);
  location.hash = '#/login';
});
window.addEventListener('hashchange', route);
route();
