// Small DOM helpers shared by every page. Text always goes in as text
// (never as HTML), so nothing a customer typed can run in the console.

/** Build an element: h('button', {type: 'button', onclick}, 'Accept'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value') {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let fieldIds = 0;
/** A labelled form field: the label is tied to the control by id. */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** A select with options [value, label]. */
export function select(name, options, selected) {
  return h('select', { name }, options.map(([value, label]) =>
    h('option', { value, selected: String(value) === String(selected) }, label)));
}

/** Money in minor units, shown in major units. */
export function money(minor, currency = '') {
  if (minor === null || minor === undefined) return '—';
  const value = (Number(minor) / 100).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return currency ? `${value} ${currency}` : value;
}

export function dateTime(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleString('en-GB', { dateStyle: 'short', timeStyle: 'medium' });
}

/** "1:05" or "12 s". */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}:${String(s % 60).padStart(2, '0')}`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function words(code) {
  return String(code ?? '').replaceAll('_', ' ');
}

/** Show a message to the user (errors stay until dismissed or replaced). */
export function notify(message, kind = 'error') {
  const el = document.getElementById('notice');
  mount(el, h('span', {}, message),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', onclick: () => { el.hidden = true; } }, '×'));
  el.dataset.kind = kind;
  el.hidden = false;
  if (kind !== 'error') {
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => { el.hidden = true; }, 5000);
  }
}

/** A UUID, also on plain http pages (where crypto.randomUUID is missing). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A problem+json (or socket error) as one readable line. */
export function problemText(e) {
  if (e && e.problem) {
    const p = e.problem;
    const fields = (p.errors || []).map((f) => `${f.field}: ${f.message}`).join('; ');
    return fields ? `${p.title}: ${fields}` : `${p.title}: ${p.detail}`;
  }
  if (e && e.code && e.detail) return `${words(e.code)}: ${e.detail}`;
  return String(e && e.message ? e.message : e);
}
