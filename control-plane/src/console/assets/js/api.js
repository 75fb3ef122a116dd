// The API wrapper (/api/v1) and the session it runs under.

import { state } from './state.js';
import { t } from './i18n.js';
import { parseTime } from './dom.js';
import { leavePage, renderLogin, renderShell, route } from './shell.js';

// ---------------------------------------------------------------------------------------------------------
// API wrapper: same-origin cookie, CSRF header on state changes, 401 -> sign-in, errors as ApiError.
// ---------------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = Array.isArray(details) ? details : [];
  }
}

// Nanosecond timestamps exceed 2^53: keep them as strings so paging by them is exact.
const BIG_INT_FIELDS = /"(next_after|ts_nanos)"\s*:\s*(-?\d+)/g;

export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch('/api/v1' + path, init);
  } catch (_) {
    throw new ApiError(0, 'network', t('err.network'));
  }
  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text.replace(BIG_INT_FIELDS, '"$1":"$2"')); } catch (_) { data = null; }
  }
  if (res.ok) return data;
  const e = (data && data.error) || {};
  const err = new ApiError(res.status, e.code || 'http_' + res.status, e.message || t('err.http', { status: res.status }), e.details);
  if (res.status === 401 && !opts.allow401) requireLogin();
  if (res.status === 403 && err.code === 'csrf' && !opts.retried && (await refreshSession())) {
    return api(method, path, body, { ...opts, retried: true });
  }
  throw err;
}

// ---------------------------------------------------------------------------------------------------------
// Session and roles.
// ---------------------------------------------------------------------------------------------------------
const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };
export const ROLES = ['viewer', 'operator', 'admin'];

export function can(role) {
  const mine = state.session && state.session.user ? state.session.user.role : null;
  return mine != null && (ROLE_RANK[mine] ?? -1) >= ROLE_RANK[role];
}

export function setSession(session) {
  state.session = session;
  state.csrf = session ? session.csrf_token : null;
  clearTimeout(state.expiryTimer);
  const end = session && parseTime(session.expires_at);
  if (end) {
    const wait = Math.min(Math.max(end.getTime() - Date.now() + 1000, 1000), 2 ** 31 - 1);
    state.expiryTimer = setTimeout(() => { refreshSession(); }, wait);
  }
}

async function refreshSession() {
  try {
    setSession(await api('GET', '/session', undefined, { allow401: true }));
    return true;
  } catch (err) {
    if (err.status === 401) requireLogin();
    return false;
  }
}

function requireLogin() {
  if (!state.session && document.querySelector('[data-testid="login-submit"]')) return;
  const wasSignedIn = !!state.session;
  leavePage();
  setSession(null);
  state.returnHash = location.hash || '#/overview';
  renderLogin(wasSignedIn ? t('login.expired') : null);
}

export function onSignedIn(session) {
  setSession(session);
  const back = state.returnHash;
  state.returnHash = null;
  renderShell();
  if (back && back !== location.hash) location.hash = back; // hashchange routes
  else route();
}

export async function signOut() {
  try { await api('DELETE', '/session', undefined, { allow401: true }); } catch (_) { /* signed out anyway */ }
  leavePage();
  setSession(null);
  state.returnHash = null;
  renderLogin();
}
