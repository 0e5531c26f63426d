// DOM helpers. Text goes in with textContent only (never innerHTML), so a
// resource or file name cannot inject markup.
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

// human writes n bytes in binary units, three significant digits.
export function human(n) {
  n = Number(n) || 0;
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  const s = i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
  return `${s} ${UNITS[i]}`;
}

// size is n bytes in human units, the exact count on hover.
export function size(n) {
  n = Number(n) || 0;
  return h('span', { class: 'size', title: `${n.toLocaleString('en')} bytes`, 'data-bytes': n }, human(n));
}

export function ratio(a, b) {
  return b > 0 ? `${(a / b).toFixed(2)}×` : '–';
}

// age is how long ago t was, the exact time on hover.
export function age(t) {
  if (!t) return h('span', { class: 'muted' }, 'never');
  const d = new Date(t);
  const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
  const txt = s < 60 ? `${Math.floor(s)} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago`
    : s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`;
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, txt);
}

export function duration(secs) {
  if (secs < 0 || !Number.isFinite(secs)) return '–';
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
}

export function status(s) {
  return h('span', { class: `status status-${s}` }, s || '–');
}

// progress is a bar at pct percent with a label.
export function progress(pct, label, attrs = {}) {
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, ...attrs },
    h('div', { class: 'fill', 'data-pct': pct }), h('span', { class: 'label' }, label));
}

// setWidths applies data-pct to the bars' fills: the CSP forbids inline
// styles in markup, but a script may set a style property.
export function setWidths(root) {
  for (const f of root.querySelectorAll('.fill[data-pct]')) f.style.width = `${Math.max(0, Math.min(100, Number(f.dataset.pct)))}%`;
}

let toastTimer;
export function toast(msg, bad = false) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'toast bad' : 'toast';
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 3000);
}
