// The project view: summary, live jobs, resources with their timeline,
// plans (protect now), restores, files, schedules and the operation log.
import { call, all, enc, PROVIDER } from './api.js';
import { h, clear, size, ratio, age, duration, status, progress, setWidths, toast } from './dom.js';
import { filesPanel } from './files.js';

const POLL_MS = 1000;

export function projectView(main, project) {
  const base = `/v1/${enc(project)}`;
  const cps = `${base}/providers/${PROVIDER}/checkpoints`;
  const el = {
    summary: h('section', { id: 'summary' }, h('h2', {}, `Project ${project}`)),
    jobs: h('section', { id: 'jobs' }, h('h2', {}, 'Jobs')),
    resources: h('section', { id: 'resources' }, h('h2', {}, 'Resources')),
    timeline: h('section', { id: 'timeline', hidden: true }),
    action: h('section', { id: 'action', hidden: true }),
    exports: h('section', { id: 'exports' }, h('h2', {}, 'NBD exports')),
    plans: h('section', { id: 'plans' }, h('h2', {}, 'Plans')),
    schedules: h('section', { id: 'schedules' }, h('h2', {}, 'Triggers and scheduled operations')),
    oplog: h('section', { id: 'oplog' }, h('h2', {}, 'Operation log')),
  };
  clear(main, el.summary, el.jobs, el.resources, el.timeline, el.action, el.exports, el.plans, h('div', { class: 'grid2' }, el.schedules, el.oplog));
  const state = { selected: null, provider: null, running: new Set(), finished: new Map(), restores: new Map(), stopped: false };

  const fail = (e) => { if (!state.stopped) toast(e.message, true); };

  async function loadSummary() {
    const [{ projects }] = await Promise.all([call('GET', `${base}/summary`)]);
    const s = projects[0] || {};
    const card = (label, value, id) => h('div', { class: 'card', id }, h('b', {}, value), label);
    clear(el.summary, h('h2', {}, `Project ${project}`), h('div', { class: 'cards' },
      card('resources', String(s.resources || 0), 'card-resources'),
      card('checkpoints', String(s.checkpoints || 0), 'card-checkpoints'),
      card('logical', size(s.logical_bytes), 'card-logical'),
      card('stored', size(s.stored_bytes), 'card-stored'),
      card('deduplication', ratio(s.read_bytes, s.new_bytes), 'card-dedup'),
      card('compression', ratio(s.new_bytes, s.stored_bytes), 'card-compression'),
      card('failures in 24 h', String(s.failures_24h || 0), 'card-failures'),
      card('last success', age(s.last_success_at), 'card-last')));
  }

  async function loadResources() {
    const { resources, truncated } = await call('GET', `${base}/resources`);
    state.known = new Set(resources.map((r) => `${r.type}#${r.id}`));
    const rows = resources.map((r) => h('tr', { class: state.selected && state.selected.id === r.id ? 'resource selected' : 'resource', 'data-id': r.id },
      h('td', {}, h('a', { href: '#', class: 'open-timeline', onclick: (ev) => { ev.preventDefault(); state.selected = r; loadTimeline().catch(fail); } }, r.name)),
      h('td', {}, r.type), h('td', {}, status(r.last_status)), h('td', {}, age(r.last_checkpoint_at)),
      h('td', { class: 'num' }, String(r.checkpoints)), h('td', { class: 'num' }, size(r.stored_bytes))));
    clear(el.resources, h('h2', {}, `Resources (${resources.length}${truncated ? '+, newest shown' : ''})`),
      rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Type', 'Last status', 'Last checkpoint', 'Checkpoints', 'Stored'].map((c, i) => h('th', { class: i > 3 ? 'num' : '' }, c)))),
        h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No resource is protected yet: create a plan.'));
  }

  // loadUnprotected lists the instances no plan protects and no
  // checkpoint holds, after the rest (listing a plugin's instances may
  // take a while, and the page is usable without it).
  async function loadUnprotected(known) {
    const { protectable_type: types } = await call('GET', `${base}/protectables`);
    const lists = await Promise.all(types.map((t) => call('GET', `${base}/protectables/${enc(t)}/instances?limit=1000`).then((r) => r.instances, () => [])));
    const rows = lists.flat().filter((i) => !known.has(`${i.type}#${i.id}`)).map((i) => h('tr', { class: 'unprotected', 'data-id': i.id },
      h('td', {}, i.name), h('td', {}, i.type), h('td', {}, h('code', {}, i.id))));
    const old = el.resources.querySelector('#unprotected');
    if (old) old.remove();
    if (rows.length) {
      el.resources.append(h('div', { id: 'unprotected' }, h('h2', {}, `Not protected (${rows.length})`),
        h('p', { class: 'muted' }, 'No plan protects these, and no checkpoint holds them.'),
        h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Type', 'ID'].map((c) => h('th', {}, c)))), h('tbody', {}, rows))));
    }
  }

  async function loadPlans() {
    const { plans } = await call('GET', `${base}/plans`);
    const rows = plans.map((p) => h('tr', { class: 'plan', 'data-id': p.id },
      h('td', {}, p.name), h('td', {}, status(p.status)), h('td', {}, p.resources.map((r) => r.name).join(', ')),
      h('td', {}, h('button', { type: 'button', class: 'protect-now', onclick: () => protectNow(p) }, 'Protect now'))));
    clear(el.plans, h('h2', {}, 'Plans'), rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Plan', 'Status', 'Resources', ''].map((c) => h('th', {}, c)))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No plans.'));
  }

  async function protectNow(p) {
    try {
      const { checkpoint } = await call('POST', cps, { checkpoint: { plan_id: p.id, extra_info: { created_by: 'console' } } });
      state.running.add(checkpoint.id);
      toast(`Protecting plan ${p.name}`);
      await pollJobs();
    } catch (e) { fail(e); }
  }

  async function loadSchedules() {
    const [{ triggers }, { operations }] = await Promise.all([call('GET', `${base}/triggers`), call('GET', `${base}/scheduled_operations`)]);
    clear(el.schedules, h('h2', {}, 'Triggers and scheduled operations'),
      h('table', { id: 'triggers' }, h('thead', {}, h('tr', {}, ['Trigger', 'Type', 'Pattern'].map((c) => h('th', {}, c)))),
        h('tbody', {}, triggers.map((t) => h('tr', {}, h('td', {}, t.name), h('td', {}, t.type), h('td', {}, (t.properties || {}).pattern || ''))))),
      h('table', { id: 'operations' }, h('thead', {}, h('tr', {}, ['Operation', 'Plan', 'Enabled', 'Last run', 'Next run'].map((c) => h('th', {}, c)))),
        h('tbody', {}, operations.map((o) => h('tr', {}, h('td', {}, o.name), h('td', {}, (o.operation_definition || {}).plan_id || ''),
          h('td', {}, o.enabled ? 'yes' : 'no'), h('td', {}, age(o.last_run)), h('td', {}, o.next_run ? new Date(o.next_run).toISOString() : '–'))))));
  }

  async function loadOplog() {
    const { operation_logs: logs } = await call('GET', `${base}/operation_logs?limit=50`);
    clear(el.oplog, h('h2', {}, 'Operation log (newest 50)'), h('table', {}, h('thead', {}, h('tr', {}, ['Started', 'Operation', 'Status', 'Error'].map((c) => h('th', {}, c)))),
      h('tbody', {}, logs.map((l) => h('tr', { class: 'oplog' }, h('td', {}, age(l.started_at)), h('td', {}, l.operation_type), h('td', {}, status(l.status)), h('td', { class: 'error' }, l.error_info || ''))))));
  }

  // pollJobs shows running protections (bytes, rate, ETA) and restores;
  // when one ends, what it changed is reloaded.
  async function pollJobs() {
    const [{ checkpoints: running }, { restores }] = await Promise.all([
      call('GET', `${cps}?status=protecting&limit=100`), call('GET', `${base}/restores?status=in_progress&limit=100`)]);
    const ended = [...state.running].filter((id) => !running.some((c) => c.id === id));
    const rows = running.map((c) => {
      const t = c.transfer || {};
      const label = t.total_bytes ? `${c.progress}% · ${sizeText(t.done_bytes)} of ${sizeText(t.total_bytes)}` : `${c.progress}%`;
      return h('tr', { class: 'job', 'data-id': c.id, 'data-kind': 'protect' }, h('td', {}, 'protect'), h('td', {}, c.protection_plan.name),
        h('td', {}, progress(c.progress, label, { 'data-done': t.done_bytes || 0, 'data-total': t.total_bytes || 0 })),
        h('td', { class: 'num' }, t.bytes_per_second ? `${sizeText(t.bytes_per_second)}/s` : '–'), h('td', { class: 'num' }, duration(t.eta_seconds ?? -1)));
    });
    for (const r of restores) {
      const t = r.transfer || {};
      const label = t.total_bytes ? `${r.progress}% · ${sizeText(t.done_bytes)} of ${sizeText(t.total_bytes)}` : `${r.progress}%`;
      rows.push(h('tr', { class: 'job', 'data-id': r.id, 'data-kind': 'restore' }, h('td', {}, 'restore'), h('td', {}, r.checkpoint_id),
        h('td', {}, progress(r.progress, label, { 'data-done': t.done_bytes || 0, 'data-total': t.total_bytes || 0 })),
        h('td', { class: 'num' }, t.bytes_per_second ? `${sizeText(t.bytes_per_second)}/s` : '–'), h('td', { class: 'num' }, duration(t.eta_seconds ?? -1))));
    }
    // A protection that ended stays in the list, at its final progress
    // (100% when it succeeded), until the next one starts.
    for (const id of ended) {
      try {
        const c = (await call('GET', `${cps}/${id}`)).checkpoint;
        const read = c.resources.reduce((n, r) => n + (r.read_bytes || 0), 0);
        state.finished.set(id, h('tr', { class: 'job finished', 'data-id': c.id, 'data-kind': 'protect', 'data-status': c.status }, h('td', {}, 'protect'),
          h('td', {}, c.protection_plan.name), h('td', {}, progress(c.progress, `${c.progress}% · ${c.status} · ${sizeText(read)} read`, { 'data-done': read, 'data-total': read })),
          h('td', {}, status(c.status)), h('td', { class: 'error' }, c.error_reason || '')));
      } catch { /* deleted meanwhile */ }
    }
    if (running.length) state.finished.clear();
    rows.push(...state.finished.values());
    const done = [...state.restores.values()].filter((r) => !restores.some((x) => x.id === r.id));
    const finished = [];
    for (const r of done) {
      state.restores.delete(r.id);
      const res = (await call('GET', `${base}/restores/${r.id}`)).restore;
      finished.push(res);
      toast(`Restore ${res.status}`, res.status !== 'success');
    }
    state.running = new Set(running.map((c) => c.id));
    clear(el.jobs, h('h2', {}, 'Jobs'), running.length || restores.length ? null : h('p', { class: 'muted', id: 'no-jobs' }, 'Nothing running.'), rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ['Job', 'Of', 'Progress', 'Rate', 'Time left'].map((c) => h('th', {}, c)))), h('tbody', {}, rows))
      : null, lastFinished(finished));
    setWidths(el.jobs);
    if (ended.length || done.length) {
      await Promise.all([loadSummary(), loadResources(), loadOplog(), state.selected ? loadTimeline() : null]);
      loadUnprotected(state.known).catch(fail);
    }
  }

  let finishedEl = null;
  function lastFinished(finished) {
    if (finished.length) {
      finishedEl = h('div', { id: 'finished' }, finished.map((r) => h('p', { class: `restore-result status-${r.status}`, 'data-id': r.id },
        `Restore of checkpoint ${r.checkpoint_id}: ${r.status}`,
        Object.entries(r.restored || {}).map(([k, v]) => h('span', {}, ' · ', k.split('#')[0], ' → ', h('code', { class: 'restored' }, v))),
        Object.values(r.resources_reason || {}).filter(Boolean).map((m) => h('span', { class: 'error' }, ' ', m)))));
    }
    return finishedEl;
  }

  async function loadTimeline() {
    const r = state.selected;
    if (!r) return;
    for (const tr of el.resources.querySelectorAll('tr.resource')) tr.classList.toggle('selected', tr.dataset.id === r.id);
    const lists = r.plan_ids.length ? await Promise.all(r.plan_ids.map((id) => all(`${cps}?plan_id=${enc(id)}`, 'checkpoints')))
      : [await all(cps, 'checkpoints')];
    const seen = new Set();
    const items = [];
    for (const c of lists.flat()) {
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      const rb = c.resources.find((x) => x.resource.id === r.id && x.resource.type === r.type);
      if (rb) items.push({ c, rb });
    }
    items.sort((a, b) => (a.c.created_at < b.c.created_at ? 1 : -1));
    const shown = items.slice(0, 500);
    const rows = shown.map(({ c, rb }) => h('tr', { class: 'checkpoint', 'data-id': c.id },
      h('td', {}, age(c.created_at)), h('td', {}, status(rb.status)),
      ['size', 'allocated_bytes', 'read_bytes', 'new_bytes', 'stored_bytes'].map((k) => h('td', { class: `num bytes-${k}` }, size(rb[k]))),
      h('td', {}, c.status === 'available' ? [
        h('button', { type: 'button', class: 'restore', onclick: () => restoreForm(c, rb) }, 'Restore'), ' ',
        h('button', { type: 'button', class: 'browse', onclick: () => browse(c, rb) }, 'Files'), ' ',
        h('button', { type: 'button', class: 'export', onclick: () => startExport(c, rb) }, 'Export'), ' ',
        h('button', { type: 'button', class: 'danger delete', onclick: (ev) => del(c, ev.target) }, 'Delete')] : c.error_reason || '')));
    el.timeline.hidden = false;
    clear(el.timeline, h('h2', {}, `Timeline of ${r.name} (${items.length} checkpoints${items.length > shown.length ? ', newest 500 shown' : ''})`),
      h('table', {}, h('thead', {}, h('tr', {}, ['Created', 'Status', 'Logical', 'Allocated', 'Read', 'New', 'Stored', ''].map((c, i) => h('th', { class: i > 1 && i < 7 ? 'num' : '' }, c)))),
        h('tbody', {}, rows)));
  }

  async function del(c, btn) {
    // Two clicks: the first arms the button, so a stray click deletes nothing.
    if (btn.dataset.armed !== 'yes') { btn.dataset.armed = 'yes'; btn.textContent = 'Confirm delete'; return; }
    try {
      await call('DELETE', `${cps}/${c.id}`);
      toast('Checkpoint deleted');
      await Promise.all([loadTimeline(), loadSummary(), loadResources(), loadOplog(), loadExports()]);
      await loadUnprotected(state.known);
    } catch (e) { fail(e); }
  }

  // NBD exports: the URL holds the export's secret; it is shown here, to
  // the project, and nowhere else.
  async function loadExports() {
    const { exports } = await call('GET', `${base}/exports`);
    clear(el.exports, h('h2', {}, 'NBD exports'), exports.length ? h('table', {},
      h('thead', {}, h('tr', {}, ['Started', 'Checkpoint', 'URL for the hypervisor', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, exports.map((x) => h('tr', { class: 'nbd-export', 'data-id': x.id, 'data-checkpoint': x.checkpoint_id },
        h('td', {}, age(x.created_at)), h('td', {}, x.checkpoint_id), h('td', {}, h('code', { class: 'url' }, x.uri)),
        h('td', {}, h('button', { type: 'button', class: 'stop-export', onclick: () => stopExport(x) }, 'Stop'))))))
      : h('p', { class: 'muted', id: 'no-exports' }, 'No checkpoint is exported. Export one from a resource’s timeline to attach it to a VM read-only.'));
  }

  async function startExport(c, rb) {
    try {
      await call('POST', `${cps}/${c.id}/exports`, { export: { resource: rb.resource.id } });
      toast('Export started');
      await loadExports();
    } catch (e) { fail(e); }
  }

  async function stopExport(x) {
    try {
      await call('DELETE', `${base}/exports/${x.id}`);
      toast('Export stopped');
      await loadExports();
    } catch (e) { fail(e); }
  }

  async function provider() {
    if (!state.provider) state.provider = (await call('GET', `${base}/providers/${PROVIDER}`)).provider;
    return state.provider;
  }

  // restoreForm renders the plugin's restore schema as a form.
  async function restoreForm(c, rb) {
    const p = await provider();
    const schema = ((p.extended_info_schema || {}).restore_schema || {})[rb.resource.type] || {};
    const fields = Object.entries(schema.properties || {}).map(([name, prop]) => {
      const type = prop.type === 'integer' || prop.type === 'number' ? 'number' : prop.type === 'boolean' ? 'checkbox' : 'text';
      return [h('label', { for: `restore-${name}`, title: prop.description || '' }, prop.title || name),
        prop.enum ? h('select', { id: `restore-${name}`, name, 'data-type': prop.type }, h('option', { value: '' }, '(default)'), prop.enum.map((v) => h('option', { value: v }, v)))
          : h('input', { id: `restore-${name}`, name, type, 'data-type': prop.type || 'string', placeholder: prop.default !== undefined ? String(prop.default) : '(default)' })];
    });
    const err = h('p', { class: 'error' });
    const form = h('form', { class: 'panel', id: 'restore-form' },
      h('label', { for: 'restore-target' }, 'Restore target'), h('input', { id: 'restore-target', name: 'restore_target', placeholder: '(the plugin’s default: a new location)' }),
      fields, h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'restore-submit' }, 'Restore'),
        h('button', { type: 'button', onclick: () => { el.action.hidden = true; } }, 'Cancel')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const params = {};
      for (const inp of form.querySelectorAll('[data-type]')) {
        if (inp.type === 'checkbox') { if (inp.checked) params[inp.name] = true; continue; }
        if (inp.value === '') continue;
        params[inp.name] = inp.dataset.type === 'integer' || inp.dataset.type === 'number' ? Number(inp.value) : inp.value;
      }
      const target = form.querySelector('#restore-target').value.trim();
      try {
        const { restore } = await call('POST', `${base}/restores`, { restore: { provider_id: PROVIDER, checkpoint_id: c.id,
          restore_target: target || null, parameters: { [`${rb.resource.type}#${rb.resource.id}`]: params } } });
        state.restores.set(restore.id, restore);
        el.action.hidden = true;
        toast('Restore started');
        await pollJobs();
      } catch (e) { err.textContent = e.message; }
    });
    el.action.hidden = false;
    clear(el.action, h('h2', {}, `Restore ${rb.resource.name} from the checkpoint of ${new Date(c.created_at).toISOString()}`),
      h('p', { class: 'muted' }, schema.title || ''), form, err);
  }

  function browse(c, rb) {
    el.action.hidden = false;
    filesPanel(el.action, `${cps}/${c.id}/files`, rb.resource, () => { el.action.hidden = true; }).catch(fail);
  }

  const reloadAll = () => Promise.all([loadSummary(), loadResources(), loadPlans(), loadSchedules(), loadOplog(), loadExports(), pollJobs()]).catch(fail);
  reloadAll().then(() => {
    main.dataset.ready = 'yes';
    performance.mark('cairn-interactive');
    if (!truncatedResources()) loadUnprotected(state.known || new Set()).catch(fail);
  });
  const truncatedResources = () => el.resources.querySelector('h2').textContent.includes('+');
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await pollJobs(); } catch (e) { fail(e); } finally { busy = false; }
  }, POLL_MS);
  return () => { state.stopped = true; clearInterval(timer); delete main.dataset.ready; };
}

function sizeText(n) { return size(n).textContent; }
