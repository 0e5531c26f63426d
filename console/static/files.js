// Browsing a checkpoint's file system and downloading one file, through
// the daemon (it mounts the checkpoint read-only for each request).
import { call, blob, enc } from './api.js';
import { h, clear, size, toast } from './dom.js';

export async function filesPanel(el, base, resource, close) {
  let path = '/';
  let partition = '';
  const q = () => `?resource=${enc(resource.id)}&partition=${enc(partition)}&path=${enc(path)}`;
  const part = h('input', { id: 'files-partition', placeholder: 'first partition', size: 12 });
  part.addEventListener('change', () => { partition = part.value.trim(); show().catch((e) => toast(e.message, true)); });

  async function download(name) {
    const p = `${path.replace(/\/$/, '')}/${name}`;
    const b = await blob(`${base}/content?resource=${enc(resource.id)}&partition=${enc(partition)}&path=${enc(p)}`);
    const a = h('a', { href: URL.createObjectURL(b), download: name, hidden: true });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 60000);
    el.dataset.downloaded = `${name}:${b.size}`;
    toast(`Downloaded ${name} (${b.size} bytes)`);
  }

  async function show() {
    clear(el, h('h2', {}, `Files of ${resource.name}`), h('p', { class: 'muted' }, 'Mounting the checkpoint…'));
    const { files } = await call('GET', `${base}${q()}`);
    const up = path !== '/' ? h('tr', {}, h('td', {}, h('a', { href: '#', class: 'dir', onclick: (ev) => { ev.preventDefault(); path = path.replace(/[^/]+\/?$/, '') || '/'; show().catch((e) => toast(e.message, true)); } }, '..')), h('td', {}), h('td', {})) : null;
    const rows = files.map((f) => h('tr', { class: 'file', 'data-name': f.name, 'data-type': f.type },
      h('td', {}, f.type === 'dir'
        ? h('a', { href: '#', class: 'dir', onclick: (ev) => { ev.preventDefault(); path = `${path.replace(/\/$/, '')}/${f.name}/`; show().catch((e) => toast(e.message, true)); } }, `${f.name}/`)
        : f.type === 'file' ? h('a', { href: '#', class: 'download', onclick: (ev) => { ev.preventDefault(); download(f.name).catch((e) => toast(e.message, true)); } }, f.name)
          : h('span', {}, f.name)),
      h('td', { class: 'num' }, f.type === 'file' ? size(f.size) : ''), h('td', {}, f.mode), h('td', {}, f.mtime)));
    clear(el, h('h2', {}, `Files of ${resource.name}: `, h('code', { id: 'files-path' }, path)),
      h('p', {}, h('label', { for: 'files-partition' }, 'Partition (number, or "disk") '), part, ' ', h('button', { type: 'button', onclick: close }, 'Close')),
      h('table', { id: 'files' }, h('thead', {}, h('tr', {}, ['Name', 'Size', 'Mode', 'Modified'].map((c) => h('th', {}, c)))), h('tbody', {}, up, rows)));
  }
  await show();
}
