/*
 * Edgefleet console: a dependency-free single-page app with hash routing (#/overview, #/demos/<id>, ...).
 *
 * Served same-origin under a strict CSP (script-src 'self'; style-src 'self'): no inline scripts, styles or
 * handlers. Server text is only ever put into the page with textContent (the h() helper), never innerHTML.
 * Every state-changing request carries the session's CSRF token; a 401 anywhere shows the sign-in form and
 * returns to the same hash afterwards.
 *
 * Native ES modules, no build step. This one boots the app; shell.js has the router and the page context, pages/
 * one module per page, and state.js the state they share.
 */

import { state } from './state.js';
import { applyDocumentLang } from './i18n.js';
import { h } from './dom.js';
import { api, setSession } from './api.js';
import { errorBlock } from './ui.js';
import { brand, renderLogin, renderShell, route } from './shell.js';

function normaliseLocation() {
  // Deep links such as /console/demos/<id> become #/demos/<id>.
  const rest = location.pathname.replace(/^\/console\/?/, '').replace(/\/+$/, '');
  if (!location.hash && rest && rest !== 'index.html') history.replaceState(null, '', `/console/#/${rest}`);
  if (!location.hash || location.hash === '#' || location.hash === '#/') history.replaceState(null, '', '#/overview');
}

async function boot() {
  applyDocumentLang();
  normaliseLocation();
  try {
    setSession(await api('GET', '/session', undefined, { allow401: true }));
    renderShell();
    route();
  } catch (err) {
    if (err.status === 401) {
      state.returnHash = location.hash;
      renderLogin();
    } else {
      document.getElementById('app').replaceChildren(h('div', { class: 'login-page' },
        h('div', { class: 'login-card' }, brand(), errorBlock(err, () => { boot(); }))));
    }
  }
}

window.addEventListener('hashchange', () => { if (state.session) route(); });
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
