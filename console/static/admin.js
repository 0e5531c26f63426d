// The administrator's view: every project at once, and a search over all
// projects' resources by name or ID.
import { call, session, enc } from './api.js';
import { h, clear, size, age, status, toast } from './dom.js';

export function adminView(main) {
  const s = session();
  // An admin token may name any project in the URL; its own, if scoped.
  const base = `/v1/${enc(s.project || 'admin')}`;
  const summary = h('section', { id: 'admin-summary' }, h('h2', {}, 'All projects'));
  const input = h('input', { id: 'search-q', type: 'search', placeholder: 'resource name or ID', size: 40 });
  const results = h('div', { id: 'search-results' });
  const form = h('form', { id: 'search' }, input, ' ', h('button', { type: 'submit', id: 'search-submit' }, 'Search'));
  const search = h('section', { id: 'admin-search' }, h('h2', {}, 'Search resources'), form, results);
  clear(main, summary, search);

  async function load() {
    const { projects } = await call('GET', `${base}/summary?all_tenants=true`);
    clear(summary, h('h2', {}, `All projects (${projects.length})`), h('table', {},
      h('thead', {}, h('tr', {}, ['Project', 'Resources', 'Checkpoints', 'Running', 'Last success', 'Failures (24 h)', 'Stored'].map((c, i) => h('th', { class: i && i !== 4 ? 'num' : '' }, c)))),
      h('tbody', {}, projects.map((p) => h('tr', { class: 'project', 'data-id': p.project_id },
        h('td', {}, h('a', { href: `#/project/${enc(p.project_id)}` }, p.project_id)), h('td', { class: 'num' }, String(p.resources)),
        h('td', { class: 'num' }, String(p.checkpoints)), h('td', { class: 'num' }, String(p.running)), h('td', {}, age(p.last_success_at)),
        h('td', { class: p.failures_24h ? 'num error' : 'num' }, String(p.failures_24h)), h('td', { class: 'num' }, size(p.stored_bytes)))))));
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const { resources, truncated } = await call('GET', `${base}/resources?all_tenants=true&q=${enc(input.value.trim())}`);
      clear(results, h('p', { class: 'muted' }, `${resources.length}${truncated ? '+' : ''} found`), h('table', {},
        h('thead', {}, h('tr', {}, ['Project', 'Resource', 'ID', 'Type', 'Last status', 'Last checkpoint', 'Stored'].map((c) => h('th', {}, c)))),
        h('tbody', {}, resources.map((r) => h('tr', { class: 'found', 'data-id': r.id, 'data-project': r.project_id },
          h('td', {}, h('a', { href: `#/project/${enc(r.project_id)}` }, r.project_id)), h('td', {}, r.name), h('td', {}, h('code', {}, r.id)), h('td', {}, r.type),
          h('td', {}, status(r.last_status)), h('td', {}, age(r.last_checkpoint_at)), h('td', { class: 'num' }, size(r.stored_bytes)))))));
    } catch (e) { toast(e.message, true); }
  });
  load().then(() => { main.dataset.ready = 'yes'; }, (e) => toast(e.message, true));
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 5000);
  return () => { clearInterval(timer); delete main.dataset.ready; };
}
