// Time and DOM helpers.

import { locale, t } from './i18n.js';

// ---------------------------------------------------------------------------------------------------------
// Times: local time with Intl, relative "x s ago" kept current by a ticker.
// ---------------------------------------------------------------------------------------------------------
export function parseTime(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtTime(value) {
  const d = parseTime(value);
  if (!d) return t('common.none');
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

export function fmtClock(value) {
  const d = parseTime(value);
  if (!d) return '';
  const time = new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }).format(d);
  return time + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function relTime(value) {
  const d = parseTime(value);
  if (!d) return t('common.none');
  const diff = Math.round((Date.now() - d.getTime()) / 1000);
  const secs = Math.abs(diff);
  if (secs < 3) return t('rel.now');
  const [n, unit] = secs < 60 ? [secs, 's']
    : secs < 3600 ? [Math.floor(secs / 60), 'm']
      : secs < 86400 ? [Math.floor(secs / 3600), 'h'] : [Math.floor(secs / 86400), 'd'];
  return t((diff < 0 ? 'rel.in.' : 'rel.') + unit, { n });
}

/** <time> showing "x s ago" (kept current) with the full local time as tooltip, or the local time itself. */
export function timeEl(value, relative = true) {
  const d = parseTime(value);
  if (!d) return h('span', { class: 'muted' }, t('common.none'));
  return h('time', { datetime: d.toISOString(), title: fmtTime(value), class: relative ? 'rel' : null },
    relative ? relTime(value) : fmtTime(value));
}

setInterval(() => {
  for (const el of document.querySelectorAll('time.rel')) el.textContent = relTime(el.getAttribute('datetime'));
}, 5000);

/** datetime-local input value (local wall time) -> RFC 3339 in UTC, or undefined. */
export function localInputToRfc3339(value) {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** RFC 3339 -> datetime-local input value in local time. */
export function rfc3339ToLocalInput(value) {
  const d = parseTime(value);
  if (!d) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// ---------------------------------------------------------------------------------------------------------
// DOM helper: h(tag, attrs, ...children). Children are nodes or text (never parsed as HTML).
// ---------------------------------------------------------------------------------------------------------
const BOOL_PROPS = new Set(['checked', 'disabled', 'selected', 'hidden', 'required', 'multiple', 'readOnly']);

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'value') value = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (BOOL_PROPS.has(k)) el[k] = true;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  appendAll(el, children);
  if (value !== undefined) el.value = value; // after the options of a <select> exist
  return el;
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces an element's children; null/false children are skipped (unlike replaceChildren). */
export function put(el, ...children) {
  el.replaceChildren();
  return appendAll(el, children);
}

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;
export const enc = encodeURIComponent;

export function qs(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    out.set(k, String(v));
  }
  const s = out.toString();
  return s ? '?' + s : '';
}
