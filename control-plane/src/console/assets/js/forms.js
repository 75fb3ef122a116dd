// Forms: controls, submission with the server's field errors, the environment editor.

import { t } from './i18n.js';
import { h, nextId, put } from './dom.js';
import { alertBox, button } from './ui.js';

export function input(name, attrs = {}) {
  return h('input', { class: 'input', name, id: nextId('in'), ...attrs });
}

export function select(name, options, attrs = {}) {
  return h('select', { class: 'input', name, id: nextId('in'), ...attrs },
    options.map(([value, label]) => h('option', { value }, label)));
}

export function field(label, control, opts = {}) {
  return h('div', { class: ['field', opts.wide && 'field-wide', opts.class] },
    h('label', { class: 'label', for: control.id || null }, label,
      opts.required ? h('span', { class: 'req' }, ' *') : null,
      opts.optional ? h('span', { class: 'opt' }, ` (${t('common.optional')})`) : null),
    control,
    opts.hint ? h('div', { class: 'hint' }, opts.hint) : null);
}

export function checkbox(name, label, checked) {
  return h('label', { class: 'check' }, h('input', { type: 'checkbox', name, checked }), h('span', null, label));
}

/** A form with an error area on top; onSubmit(values) runs with the submit button disabled. */
export function form(attrs, children, onSubmit) {
  const f = h('form', { class: 'form', novalidate: true, ...attrs }, h('div', { class: 'form-errors' }), children);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const submit = f.querySelector('[type="submit"]');
    clearFormErrors(f);
    if (submit) submit.disabled = true;
    f.classList.add('busy');
    try {
      await onSubmit(formValues(f), f);
    } catch (err) {
      showFormError(f, err);
    } finally {
      if (submit) submit.disabled = false;
      f.classList.remove('busy');
    }
  });
  return f;
}

export function formValues(f) {
  const out = {};
  for (const el of f.elements) {
    if (!el.name || el.closest('[data-field="env"]')) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim();
  }
  return out;
}

function clearFormErrors(f) {
  f.querySelector('.form-errors').replaceChildren();
  for (const el of f.querySelectorAll('.field-error')) el.remove();
  for (const el of f.querySelectorAll('.invalid')) { el.classList.remove('invalid'); el.removeAttribute('aria-invalid'); }
}

/** Maps an API field name ("credentials.secret_id", "env.FOO", "manifest[0]") to a control of the form. */
function findControl(f, fieldName) {
  if (!fieldName) return null;
  const candidates = [fieldName, fieldName.split('.').pop(), fieldName.split(/[.[]/)[0]];
  for (const c of candidates) {
    const sel = `[name="${CSS.escape(c)}"], [data-field="${CSS.escape(c)}"]`;
    const el = f.querySelector(sel);
    if (el) return el;
  }
  return null;
}

function showFormError(f, err) {
  if (err.status === 401) return;
  const top = f.querySelector('.form-errors');
  if (err.status !== 422 || !err.details.length) {
    put(top, alertBox('error', err.message));
    return;
  }
  const unplaced = [];
  let first = null;
  for (const d of err.details) {
    const msg = h('div', { class: 'field-error', 'data-testid': `field-error-${d.field}` }, d.message);
    const control = findControl(f, d.field);
    if (control) {
      control.classList.add('invalid');
      control.setAttribute('aria-invalid', 'true');
      const holder = control.closest('.field') || control.parentElement;
      holder.append(msg);
      first = first || control;
    } else {
      msg.prepend(h('strong', null, d.field ? `${d.field}: ` : ''));
      unplaced.push(msg);
    }
  }
  put(top, alertBox('error', unplaced.length ? err.message : t('err.fields'), unplaced));
  if (first && first.focus) first.focus();
}

/** Key/value rows for environment variables; value() -> {NAME: value} of the filled rows. */
export function envEditor(initial = {}, suggestions = []) {
  const rows = h('div', { class: 'env-rows' });
  const addRow = (key = '', value = '', placeholder = '') => {
    const row = h('div', { class: 'env-row' },
      h('input', { class: 'input mono', 'aria-label': t('demos.envKey'), placeholder: t('demos.envKey'), value: key, spellcheck: 'false' }),
      h('input', { class: 'input mono', 'aria-label': t('demos.envValue'), placeholder: placeholder || t('demos.envValue'), value }),
      button('×', () => row.remove(), { class: 'btn btn-small btn-icon', title: t('demos.envRemove'), 'aria-label': t('demos.envRemove') }));
    rows.append(row);
  };
  const el = h('div', { class: 'env-editor', 'data-field': 'env' }, rows,
    button(t('demos.envAdd'), () => addRow(), { class: 'btn btn-small', 'data-testid': 'env-add' }));
  const setSuggestions = (list, values = {}) => {
    put(rows);
    const seen = new Set();
    for (const v of list) { seen.add(v.name); addRow(v.name, values[v.name] ?? '', v.default ?? ''); }
    for (const [k, v] of Object.entries(values)) if (!seen.has(k)) addRow(k, v);
  };
  setSuggestions(suggestions, initial);
  return {
    el,
    setSuggestions,
    value() {
      const out = {};
      for (const row of rows.children) {
        const [k, v] = row.querySelectorAll('input');
        if (k.value.trim() && v.value !== '') out[k.value.trim()] = v.value;
      }
      return out;
    },
  };
}
