// dom.js: building elements without HTML strings. Every value lands in
// the page as a text node or a property, never through innerHTML, so a
// remark or a prompt holding markup stays text.

// h('button', {class: 'x', onclick: fn, disabled: true}, 'text', child...)
//   - "class": a string or an array (falsy items dropped);
//   - "on<event>": a listener;
//   - "dataset": an object copied into data-* attributes;
//   - value, checked, disabled, hidden, selected, multiple, indeterminate,
//     open: set as properties;
//   - anything else: setAttribute (skipped when null, undefined or false).
// Children: strings and numbers become text nodes; null, undefined and
// false are skipped; arrays are flattened.
const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple',
  'indeterminate', 'open', 'required', 'readOnly', 'tabIndex']);

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'class') {
        const cls = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        if (cls) el.className = cls;
      } else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      } else if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (PROPS.has(k)) {
        el[k] = v;
      } else if (v !== false) {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

// Replaces every child of `el` with `children`.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let seq = 0;
// A page-unique id for label/aria wiring.
export function uid(prefix = 'id') {
  seq += 1;
  return `${prefix}-${seq}`;
}
