// A demo's logs, on the demo page.

import { t } from '../i18n.js';
import { enc, h, put, qs } from '../dom.js';
import { api } from '../api.js';
import { card } from '../ui.js';
import { select } from '../forms.js';
import { logLineEl } from './shared.js';

/** Logs of one demo: live tail (SSE) or a page query, with window, level and text filters. */
export function demoLogsPanel(ctx, demoId) {
  const view = h('div', { class: 'logview', 'data-testid': 'demo-logs' });
  const status = h('span', { class: 'muted small' });
  const level = select('level', [['', t('logs.anyLevel')], ...['debug', 'info', 'warn', 'error'].map((l) => [l, t(`level.${l}`)])], { 'aria-label': t('demos.minLevel'), 'data-testid': 'demo-logs-level' });
  const text = h('input', { class: 'input', type: 'search', placeholder: t('demos.filterText'), 'aria-label': t('demos.filterText'), 'data-testid': 'demo-logs-q' });
  const windowSel = select('window', [['15m', t('demos.window.15m')], ['1h', t('demos.window.1h')], ['24h', t('demos.window.24h')], ['all', t('demos.window.all')]], { value: '1h', 'aria-label': t('demos.window') });
  const live = h('input', { type: 'checkbox', checked: true, 'data-testid': 'demo-logs-live' });
  const WINDOWS = { '15m': 900e3, '1h': 3600e3, '24h': 86400e3 };
  const MAX_LINES = 1000;
  let es = null;
  let lastId = null;
  let gen = 0;

  const params = () => ({
    level: level.value, q: text.value.trim(),
    since: WINDOWS[windowSel.value] ? new Date(Date.now() - WINDOWS[windowSel.value]).toISOString() : undefined,
  });
  const add = (line) => {
    const stick = view.scrollTop + view.clientHeight >= view.scrollHeight - 24;
    const empty = view.querySelector('.log-empty');
    if (empty) empty.remove();
    view.append(logLineEl(line));
    while (view.childElementCount > MAX_LINES) view.firstElementChild.remove();
    if (stick) view.scrollTop = view.scrollHeight;
  };
  const stop = () => { if (es) es.close(); es = null; };
  const tail = (cursor) => {
    stop();
    const my = gen;
    es = ctx.stream(`/api/v1/demos/${enc(demoId)}/logs${qs({ ...params(), follow: true, cursor })}`, {
      line: (line, ev) => { if (my === gen) { lastId = ev.lastEventId || lastId; add(line); } },
      onerror: (ev, source) => {
        if (ev.data) status.textContent = String(ev.data);
        // EventSource would reconnect from the start and repeat lines: reconnect ourselves from the cursor.
        source.close();
        if (my === gen && live.checked) { status.textContent = t('err.stream'); ctx.later(3000, () => { if (my === gen) tail(lastId || undefined); }); }
      },
    });
    es.onopen = () => { if (my === gen) status.textContent = t('logs.liveOn'); };
  };
  const query = async () => {
    const my = gen;
    try {
      const data = await api('GET', `/demos/${enc(demoId)}/logs${qs({ ...params(), limit: 500 })}`);
      if (my !== gen) return;
      for (const line of data.lines || []) add(line);
      status.textContent = t('logs.count', { n: (data.lines || []).length });
    } catch (err) { status.textContent = err.message; }
  };
  const apply = () => {
    gen++;
    stop();
    lastId = null;
    put(view, h('div', { class: 'muted small log-empty' }, t('demos.noLogs')));
    status.textContent = '';
    if (live.checked) tail(); else query();
  };
  let debounce = null;
  text.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(apply, 400); });
  ctx.onLeave(() => clearTimeout(debounce));
  for (const el of [level, windowSel, live]) el.addEventListener('change', apply);
  apply();
  return card(t('demos.logs'), [
    h('div', { class: 'toolbar log-toolbar' }, windowSel, level, text,
      h('label', { class: 'check' }, live, h('span', null, t('demos.live'))), h('span', { class: 'spacer' }), status),
    view,
  ], { class: 'logs-card' });
}
