// Logs across demos and clusters: containers' output, Kubernetes events and the agents' own logs. The page's hash
// query (`#/logs?cluster_id=...&stream=agent`) presets the filters.

import { t } from '../i18n.js';
import { enc, fmtTime, h, localInputToRfc3339, put, qs } from '../dom.js';
import { api } from '../api.js';
import { button, card, dash, levelBadge, link, pageHead } from '../ui.js';
import { field, form, formValues, input, select } from '../forms.js';
import { byId, clusterLink, getAll } from './shared.js';

const STREAMS = ['container', 'event', 'agent'];

export async function pageLogs(ctx, page, _params, query) {
  const [demos, clusters] = await getAll(['/demos', '/clusters']);
  const demoMap = byId(demos);
  const clusterMap = byId(clusters);
  const tbody = h('tbody');
  const status = h('span', { class: 'muted small' });
  const more = button(t('logs.loadMore'), () => runQuery(true), { class: 'btn', hidden: true, 'data-testid': 'logs-more' });
  const live = h('input', { type: 'checkbox', name: 'live', 'data-testid': 'logs-live' });
  let cursor = null;
  let es = null;
  let gen = 0;
  let count = 0;

  const row = (l) => h('tr', { 'data-testid': 'log-line', 'data-level': l.level || '' },
    h('td', { class: 'nowrap' }, h('time', { datetime: l.time || '', title: l.time || '' }, fmtTime(l.time))),
    h('td', null, levelBadge(l.level)),
    h('td', null, l.demo_id ? link(`#/demos/${enc(l.demo_id)}`, demoMap.get(l.demo_id) ? demoMap.get(l.demo_id).name : l.demo_id.slice(0, 8)) : dash()),
    h('td', null, l.cluster_id ? clusterLink(l.cluster_id, clusterMap) : dash(), l.region ? h('span', { class: 'muted small' }, ` · ${l.region}`) : null),
    h('td', { class: 'mono small' }, l.namespace ? h('span', { class: 'muted' }, `${l.namespace}/`) : null,
      [l.pod, l.container].filter(Boolean).join('/') || t('common.none'),
      l.stream && l.stream !== 'container' ? h('span', { class: 'badge', 'data-testid': 'log-stream' }, t(`logs.stream.${l.stream}`)) : null),
    h('td', { class: 'log-msg' }, String(l.message ?? '')));
  const add = (lines) => {
    for (const l of lines) tbody.append(row(l));
    count += lines.length;
    while (tbody.childElementCount > 5000) tbody.firstElementChild.remove();
    status.textContent = t('logs.count', { n: count });
  };
  const filters = form({ class: 'form filters', 'data-testid': 'logs-filters' }, [
    field(t('common.since'), input('since', { type: 'datetime-local' })),
    field(t('common.until'), input('until', { type: 'datetime-local' })),
    field(t('common.level'), select('level', [['', t('logs.anyLevel')], ...['debug', 'info', 'warn', 'error'].map((l) => [l, t(`level.${l}`)])])),
    field(t('common.text'), input('q', { type: 'search', maxlength: 500 })),
    field(t('logs.demo'), select('demo_id', [['', t('logs.anyDemo')], ...demos.map((d) => [d.id, d.name])])),
    field(t('logs.cluster'), select('cluster_id', [['', t('logs.anyCluster')], ...clusters.map((c) => [c.id, c.name])], { 'data-testid': 'logs-cluster' })),
    field(t('logs.namespace'), input('namespace', { maxlength: 63, 'data-testid': 'logs-namespace' })),
    field(t('logs.streamField'), select('stream', [['', t('logs.anyStream')], ...STREAMS.map((s) => [s, t(`logs.stream.${s}`)])], { 'data-testid': 'logs-stream' })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'logs-search' }, t('common.search')),
      h('label', { class: 'check' }, live, h('span', null, t('logs.live')))),
  ], async () => { live.checked ? startTail() : await runQuery(false); });
  const params = () => {
    const v = formValues(filters);
    return { since: localInputToRfc3339(v.since), until: localInputToRfc3339(v.until), level: v.level, q: v.q, demo_id: v.demo_id,
      cluster_id: v.cluster_id, namespace: v.namespace, stream: v.stream };
  };
  const reset = () => { gen++; if (es) es.close(); es = null; cursor = null; count = 0; put(tbody); more.hidden = true; status.textContent = ''; };
  const runQuery = async (append) => {
    if (!append) reset();
    const my = gen;
    const data = await api('GET', `/logs${qs({ ...params(), cursor: append ? cursor : undefined, limit: 200 })}`);
    if (my !== gen) return;
    add(data.lines || []);
    cursor = data.next_cursor || null;
    more.hidden = !cursor;
  };
  const startTail = (resume) => {
    if (!resume) reset();
    const my = gen;
    const p = params();
    // Without a start time a tail would replay every stored line: follow from five minutes ago.
    if (!p.since && !resume) p.since = new Date(Date.now() - 300e3).toISOString();
    es = ctx.stream(`/api/v1/logs${qs({ ...p, until: undefined, follow: true, cursor: resume })}`, {
      line: (l, ev) => { if (my === gen) { cursor = ev.lastEventId || cursor; add([l]); } },
      onerror: (ev, source) => {
        source.close();
        if (my === gen && live.checked) { status.textContent = t('err.stream'); ctx.later(3000, () => { if (my === gen) startTail(cursor || undefined); }); }
      },
    });
    es.onopen = () => { if (my === gen) status.textContent = `${t('logs.liveOn')} ${t('logs.count', { n: count })}`; };
  };
  for (const name of ['cluster_id', 'namespace', 'stream', 'demo_id']) {
    if (query && query.get(name)) filters.elements[name].value = query.get(name);
  }
  live.addEventListener('change', () => filters.requestSubmit());
  page.append(pageHead(t('logs.title')), card(null, filters, { class: 'filters-card' }),
    card(null, [
      h('div', { class: 'toolbar' }, status),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table table-logs', 'data-testid': 'logs-results' },
        h('thead', null, h('tr', null, [t('common.time'), t('common.level'), t('logs.demo'), t('logs.where'), t('logs.pod'), t('common.message')].map((x) => h('th', null, x)))),
        tbody)),
      h('div', { class: 'pager' }, more),
    ]));
  filters.requestSubmit();
}
