// Small UI components.

import { state } from './state.js';
import { MESSAGES, t, tStatus } from './i18n.js';
import { h, put } from './dom.js';

const TONES = {
  green: ['ready', 'online', 'succeeded', 'connected', 'in_sync', 'enabled', 'active', 'applied', 'unchanged'],
  amber: ['pending', 'running', 'leased', 'developing', 'bootstrapping', 'provisioning', 'registered', 'planned',
    'destroying', 'drifted', 'warn', 'not_ready'],
  red: ['failed', 'degraded', 'error'],
  blue: ['info', 'terraform'],
};
export const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

function tone(value) {
  for (const [name, values] of Object.entries(TONES)) if (values.includes(value)) return name;
  return 'grey';
}

export function badge(value, attrs = {}) {
  return h('span', { ...attrs, class: `badge badge-${tone(value)}`, 'data-value': value ?? '' }, tStatus(value));
}

export function levelBadge(level) {
  const key = 'level.' + level;
  return h('span', { class: `badge badge-small badge-${tone(level)}` }, key in MESSAGES.en ? t(key) : String(level || ''));
}

export function httpStatusBadge(code) {
  const n = Number(code);
  const cls = n >= 500 ? 'red' : n >= 400 ? 'amber' : n >= 200 ? 'green' : 'grey';
  return h('span', { class: `badge badge-${cls}` }, String(code));
}

export function link(href, text, attrs = {}) { return h('a', { href, ...attrs }, text); }

export function externalLink(url, attrs = {}) {
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'ext', ...attrs }, url);
}

export function dash() { return h('span', { class: 'muted' }, t('common.none')); }
export function orDash(v) { return v == null || v === '' ? dash() : String(v); }

export function button(label, onclick, attrs = {}) {
  return h('button', { type: 'button', class: 'btn', ...attrs, onclick }, label);
}

/** A button that disables itself while its async action runs; errors become a toast. */
export function actionButton(label, action, attrs = {}) {
  const b = button(label, async () => {
    b.disabled = true;
    try { await action(); } catch (err) { reportError(err); } finally { b.disabled = false; }
  }, attrs);
  return b;
}

export function setTitle(text) {
  document.title = `${text} · ${t('app.name')}`;
  if (state.els) state.els.title.textContent = text;
}

export function pageHead(title, ...actions) {
  setTitle(title);
  return h('div', { class: 'page-head' }, h('h1', null, title), h('div', { class: 'page-actions' }, actions));
}

export function card(title, body, opts = {}) {
  return h('section', { class: ['card', opts.class], 'data-testid': opts.testid },
    title || opts.actions ? h('div', { class: 'card-head' }, h('h2', null, title), h('div', { class: 'card-actions' }, opts.actions)) : null,
    h('div', { class: 'card-body' }, body));
}

export function alertBox(kind, ...content) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, content);
}

export function loadingEl() { return h('div', { class: 'loading' }, h('span', { class: 'spinner' }), t('common.loading')); }

/** Definition list of [label, value] pairs. */
export function props(pairs) {
  return h('dl', { class: 'props' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v == null || v === '' ? dash() : v)]));
}

export function toast(message, kind = 'ok') {
  let box = document.getElementById('toasts');
  if (!box) { box = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' }); document.body.append(box); }
  const el = h('div', { class: `toast toast-${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

export function reportError(err) {
  if (err && err.status === 401) return; // the sign-in form is already shown
  toast(err && err.message ? err.message : String(err), 'error');
}

/** Renders an error in place of a page (section), with a retry button. */
export function errorBlock(err, retry) {
  if (err && err.status === 401) return h('div');
  return alertBox('error', h('span', null, err.message || String(err)), retry ? button(t('common.retry'), retry, { class: 'btn btn-small' }) : null);
}

/** Loads data and renders it into a container; shows loading and errors (with retry). */
export async function fill(container, load, render) {
  if (!container.firstChild) container.append(loadingEl());
  try {
    const data = await load();
    put(container, ...[render(data)].flat().filter(Boolean));
  } catch (err) {
    put(container, errorBlock(err, () => fill(container, load, render)));
  }
}

export function copyBox(text, testid) {
  const pre = h('pre', { class: 'copy-text', 'data-testid': testid }, text);
  const b = button(t('common.copy'), async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      document.execCommand('copy');
    }
    b.textContent = t('common.copied');
    setTimeout(() => { b.textContent = t('common.copy'); }, 1500);
  }, { class: 'btn btn-small copy-btn' });
  return h('div', { class: 'copy-box' }, b, pre);
}

/** A secret shown once: warning, copyable value, and a close button. */
export function secretPanel(title, secret, testid, ...more) {
  const panel = card(title, [
    alertBox('warn', t('secret.once')),
    copyBox(secret, testid),
    more,
  ], { class: 'secret-card', actions: button(t('common.close'), () => panel.remove(), { class: 'btn btn-small' }) });
  return panel;
}

/** Modal confirmation; resolves true/false. With `typed`, OK stays disabled until that text is typed. */
export function confirmDialog({ title, body, ok, danger, typed }) {
  return new Promise((resolve) => {
    const before = document.activeElement;
    const okBtn = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', 'data-testid': 'confirm-ok' }, ok || t('common.confirm'));
    const cancelBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'confirm-cancel' }, t('common.cancel'));
    let input = null;
    if (typed) {
      input = h('input', { class: 'input', 'data-testid': 'confirm-input', autocomplete: 'off', spellcheck: 'false' });
      okBtn.disabled = true;
      input.addEventListener('input', () => { okBtn.disabled = input.value !== typed; });
    }
    const overlay = h('div', { class: 'modal-overlay' },
      h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
        h('h2', null, title),
        h('div', { class: 'modal-body' }, body,
          typed ? h('label', { class: 'typed-confirm' }, t('confirm.typeName', { name: typed }), input) : null),
        h('div', { class: 'modal-actions' }, cancelBtn, okBtn)));
    const onKey = (ev) => {
      if (ev.key === 'Escape') done(false);
      if (ev.key === 'Enter' && input && !okBtn.disabled && document.activeElement === input) done(true);
    };
    function done(result) {
      overlay.remove();
      document.removeEventListener('keydown', onKey);
      if (before && before.focus) before.focus();
      resolve(result);
    }
    okBtn.addEventListener('click', () => done(true));
    cancelBtn.addEventListener('click', () => done(false));
    overlay.addEventListener('click', (ev) => { if (ev.target === overlay) done(false); });
    document.addEventListener('keydown', onKey);
    document.body.append(overlay);
    (input || okBtn).focus();
  });
}

/** Modal asking for one value (e.g. a new password); resolves the value or null. */
export async function promptDialog({ title, label, type = 'text', name = 'value' }) {
  const input = h('input', { class: 'input', type, name, autocomplete: type === 'password' ? 'new-password' : 'off' });
  const ok = await confirmDialog({ title, body: h('label', { class: 'field' }, h('span', { class: 'label' }, label), input) });
  return ok ? input.value : null;
}

// Tables -----------------------------------------------------------------------------------------------
/**
 * columns: [{label, cell: row => node|text, class}]; client-side pages of `pageSize` rows.
 * opts.rowAttrs(row) adds attributes (data-testid...), opts.pager keeps the page across redraws.
 */
export function table(columns, rows, opts = {}) {
  const pageSize = opts.pageSize || 25;
  const pager = opts.pager || { page: 0 };
  const wrap = h('div', { class: 'table-wrap' });
  const draw = () => {
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    pager.page = Math.min(pager.page, pages - 1);
    const slice = rows.slice(pager.page * pageSize, (pager.page + 1) * pageSize);
    const body = slice.length
      ? slice.map((row) => h('tr', opts.rowAttrs ? opts.rowAttrs(row) : null,
        columns.map((c) => h('td', { class: c.class }, c.cell(row)))))
      : h('tr', null, h('td', { class: 'empty', colspan: columns.length }, opts.empty || t('common.empty')));
    put(wrap, 
      h('table', { class: 'table', 'data-testid': opts.testid },
        h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class }, c.label)))),
        h('tbody', null, body)),
      rows.length > pageSize ? pagerEl({
        from: pager.page * pageSize + 1, to: pager.page * pageSize + slice.length, total: rows.length,
        hasPrev: pager.page > 0, hasNext: pager.page < pages - 1,
        onPrev: () => { pager.page--; draw(); }, onNext: () => { pager.page++; draw(); },
      }) : null);
  };
  draw();
  return wrap;
}

export function pagerEl({ from, to, total, hasPrev, hasNext, onPrev, onNext }) {
  const range = to < from ? '' : total != null ? t('common.rangeTotal', { from, to, total }) : t('common.range', { from, to });
  return h('div', { class: 'pager' },
    h('span', { class: 'pager-range' }, range),
    button(t('common.prev'), onPrev, { class: 'btn btn-small', disabled: !hasPrev, 'data-testid': 'page-prev' }),
    button(t('common.next'), onNext, { class: 'btn btn-small', disabled: !hasNext, 'data-testid': 'page-next' }));
}
