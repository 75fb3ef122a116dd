// Shell: page context, sign-in screen, sidebar, top bar, router, language switch.

import { state } from './state.js';
import { applyDocumentLang, LANG_KEY, t } from './i18n.js';
import { h, put, qs } from './dom.js';
import { api, can, onSignedIn, signOut } from './api.js';
import { alertBox, button, errorBlock, link, pageHead } from './ui.js';
import { pageAudit } from './pages/audit.js';
import { pageClouds } from './pages/clouds.js';
import { pageCluster, pageClusters } from './pages/clusters.js';
import { pageDemo, pageDemos } from './pages/demos.js';
import { pageLogs } from './pages/logs.js';
import { pageOverview } from './pages/overview.js';
import { pageRegions } from './pages/regions.js';
import { pageTask, pageTasks } from './pages/tasks.js';
import { pageTemplate, pageTemplates } from './pages/templates.js';
import { pageTokens } from './pages/tokens.js';
import { pageUsers } from './pages/users.js';

// ---------------------------------------------------------------------------------------------------------
// Page context: everything a page starts (timers, polls, event streams) ends when the page is left.
// ---------------------------------------------------------------------------------------------------------
function newCtx() {
  const cleanups = [];
  const ctx = {
    alive: true,
    onLeave(fn) { cleanups.push(fn); },
    later(ms, fn) {
      const id = setTimeout(() => { if (ctx.alive) fn(); }, ms);
      cleanups.push(() => clearTimeout(id));
    },
    every(ms, fn) {
      const id = setInterval(() => { if (ctx.alive) fn(); }, ms);
      cleanups.push(() => clearInterval(id));
    },
    /** Runs fn now and again every ms after it settles, until it returns false or the page is left. */
    poll(ms, fn) {
      const run = async () => {
        if (!ctx.alive) return;
        let again = true;
        try { again = (await fn()) !== false; } catch (err) { if (err.status === 401) return; }
        if (again) ctx.later(ms, run);
      };
      run();
    },
    /** An EventSource whose named events get parsed JSON (or text) data; closed when the page is left. */
    stream(url, handlers) {
      const es = new EventSource(url, { withCredentials: true });
      for (const [name, fn] of Object.entries(handlers)) {
        if (name === 'onerror') continue;
        es.addEventListener(name, (ev) => {
          let data = ev.data;
          try { data = JSON.parse(ev.data); } catch (_) { /* plain text event */ }
          fn(data, ev);
        });
      }
      es.onerror = (ev) => { if (handlers.onerror) handlers.onerror(ev, es); };
      cleanups.push(() => es.close());
      return es;
    },
    end() {
      ctx.alive = false;
      for (const fn of cleanups.splice(0)) { try { fn(); } catch (_) { /* ignore */ } }
    },
  };
  return ctx;
}

export function leavePage() {
  if (state.ctx) state.ctx.end();
  state.ctx = null;
}

// ---------------------------------------------------------------------------------------------------------
// Shell: sign-in screen, sidebar, top bar, router.
// ---------------------------------------------------------------------------------------------------------
const NAV = [
  [null, ['overview']],
  ['nav.group.infra', ['clouds', 'regions', 'clusters']],
  ['nav.group.workloads', ['templates', 'demos']],
  ['nav.group.ops', ['tasks', 'logs']],
  ['nav.group.admin', ['users', 'tokens', 'audit']],
];
const ADMIN_PAGES = new Set(['users', 'tokens', 'audit']);

function setLang(next) {
  state.lang = next;
  try { localStorage.setItem(LANG_KEY, next); } catch (_) { /* storage disabled */ }
  applyDocumentLang();
  if (state.session) { renderShell(); route(); } else { renderLogin(); }
}

function langSwitch() {
  return h('button', {
    type: 'button', class: 'lang-switch', 'data-testid': 'lang-switch', 'data-lang': state.lang,
    title: t('top.language'), 'aria-label': t('top.language'),
    onclick: () => setLang(state.lang === 'en' ? 'zh' : 'en'),
  }, h('span', { class: state.lang === 'en' ? 'on' : null }, 'EN'), h('span', { class: 'sep' }, '/'), h('span', { class: state.lang === 'zh' ? 'on' : null }, '中文'));
}

export function brand() {
  return h('div', { class: 'brand' }, h('span', { class: 'brand-mark' }, 'E'),
    h('span', { class: 'brand-text' }, h('strong', null, t('app.name')), h('small', null, t('app.tagline'))));
}

export function renderLogin(notice) {
  applyDocumentLang();
  document.title = `${t('login.title')} · ${t('app.name')}`;
  state.els = null;
  const errSlot = h('div', { class: 'login-error-slot' });
  const user = h('input', { class: 'input', name: 'username', id: 'login-username', autocomplete: 'username', required: true, 'data-testid': 'login-username' });
  const pass = h('input', { class: 'input', name: 'password', id: 'login-password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'login-submit' }, t('login.submit'));
  const f = h('form', { class: 'login-form', novalidate: true, 'data-testid': 'login-form' },
    h('div', { class: 'field' }, h('label', { class: 'label', for: 'login-username' }, t('login.username')), user),
    h('div', { class: 'field' }, h('label', { class: 'label', for: 'login-password' }, t('login.password')), pass),
    errSlot, submit);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    put(errSlot);
    try {
      const session = await api('POST', '/session', { username: user.value.trim(), password: pass.value }, { allow401: true });
      onSignedIn(session);
    } catch (err) {
      pass.value = '';
      put(errSlot, h('div', { class: 'alert alert-error', role: 'alert', 'data-testid': 'login-error' }, err.message));
      pass.focus();
    } finally {
      submit.disabled = false;
    }
  });
  document.getElementById('app').replaceChildren(h('div', { class: 'login-page' },
    h('div', { class: 'login-card' },
      h('div', { class: 'login-top' }, brand(), langSwitch()),
      h('h1', null, t('login.title')),
      h('p', { class: 'muted' }, t('login.subtitle')),
      notice ? alertBox('info', notice) : null,
      f)));
  user.focus();
}

export function renderShell() {
  applyDocumentLang();
  const { user } = state.session;
  const nav = h('nav', { class: 'sidebar', 'aria-label': 'main' }, brand(),
    NAV.map(([group, pages]) => {
      const visible = pages.filter((p) => !ADMIN_PAGES.has(p) || can('admin'));
      if (!visible.length) return null;
      return h('div', { class: 'nav-group' },
        group ? h('div', { class: 'nav-group-title' }, t(group)) : null,
        visible.map((p) => h('a', { href: `#/${p}`, class: 'nav-item', 'data-testid': `nav-${p}`, 'data-page': p }, t(`nav.${p}`))));
    }));
  const title = h('div', { class: 'topbar-title' });
  const top = h('header', { class: 'topbar' }, title,
    h('div', { class: 'topbar-right' },
      h('div', { class: 'user-menu', 'data-testid': 'user-menu', title: `${user.username} (${user.role})` },
        h('span', { class: 'avatar' }, (user.username || '?').slice(0, 1).toUpperCase()),
        h('span', { class: 'user-name' }, user.username),
        h('span', { class: `role-pill role-${user.role}`, 'data-role': user.role }, t(`role.${user.role}`))),
      langSwitch(),
      button(t('top.signout'), signOut, { class: 'btn btn-ghost', 'data-testid': 'logout' })));
  const main = h('main', { class: 'content', id: 'main' });
  document.getElementById('app').replaceChildren(h('div', { class: 'layout' }, nav, h('div', { class: 'main-col' }, top, main)));
  state.els = { nav, main, title };
}

const ROUTES = [
  [/^\/overview$/, () => pageOverview],
  [/^\/clouds$/, () => pageClouds],
  [/^\/regions$/, () => pageRegions],
  [/^\/clusters$/, () => pageClusters],
  [/^\/clusters\/([^/]+)$/, () => pageCluster],
  [/^\/templates$/, () => pageTemplates],
  [/^\/templates\/([^/]+)$/, () => pageTemplate],
  [/^\/demos$/, () => pageDemos],
  [/^\/demos\/([^/]+)$/, () => pageDemo],
  [/^\/tasks$/, () => pageTasks],
  [/^\/tasks\/([^/]+)$/, () => pageTask],
  [/^\/logs$/, () => pageLogs],
  [/^\/users$/, () => pageUsers, 'admin'],
  [/^\/tokens$/, () => pageTokens, 'admin'],
  [/^\/audit$/, () => pageAudit, 'admin'],
];

function currentRoute() {
  const raw = location.hash.replace(/^#/, '') || '/overview';
  const i = raw.indexOf('?');
  return { path: i < 0 ? raw : raw.slice(0, i), query: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
}

/** Changes the hash query of the current page (filters, offsets): the router re-renders the page. */
export function setQuery(params) {
  const { path } = currentRoute();
  location.hash = '#' + path + qs(params);
}

export function route() {
  if (!state.session || !state.els) return;
  const { path, query } = currentRoute();
  leavePage();
  const ctx = state.ctx = newCtx();
  const section = path.split('/')[1] || '';
  for (const a of state.els.nav.querySelectorAll('.nav-item')) a.classList.toggle('active', a.dataset.page === section);
  const main = state.els.main;
  const page = h('div', { class: 'page' });
  put(main, page);
  main.scrollTop = 0;
  for (const [re, get, role] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    if (role && !can(role)) {
      page.append(pageHead(t(`nav.${section}`)), alertBox('error', t('err.forbiddenPage', { role: t(`role.${role}`) })));
      return;
    }
    Promise.resolve(get()(ctx, page, m.slice(1).map(decodeURIComponent), query))
      .catch((err) => { if (ctx.alive) page.append(errorBlock(err, route)); });
    return;
  }
  page.append(pageHead(t('err.notFound')), h('p', null, link('#/overview', t('nav.overview'))));
}
