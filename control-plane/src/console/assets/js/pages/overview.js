// Overview.

import { t } from '../i18n.js';
import { enc, h, timeEl } from '../dom.js';
import { badge, button, card, dash, externalLink, fill, link, loadingEl, orDash, pageHead, table } from '../ui.js';
import { agentBadge, byId, clusterLink, getAll, regionLabel } from './shared.js';
import { sparkline } from '../charts.js';

const HEALTH_TONE = { healthy: 'green', degraded: 'amber', pending: 'amber', down: 'red', empty: 'grey', disabled: 'grey' };

export async function pageOverview(ctx, page) {
  const body = h('div', { class: 'overview' }, loadingEl());
  page.append(pageHead(t('nav.overview'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })), body);
  const load = () => fill(body,
    () => getAll(['/regions', '/clusters', '/demos', '/tasks?state=failed&limit=10', '/fleet?minutes=60']),
    ([regions, clusters, demos, failed, fleet]) => renderOverview(regions, clusters, demos, failed, fleet));
  await load();
  ctx.every(15000, load);
}

/** The region's charts over the last hour, from the control plane's samples (GET /fleet). */
function regionCharts(region, interval) {
  const samples = region.samples || [];
  if (!samples.length) {
    return h('p', { class: 'muted small', 'data-testid': `charts-${region.code}-empty` }, t('overview.noSamples', { seconds: interval }));
  }
  const times = samples.map((x) => Date.parse(x.at));
  const perMinute = 60 / interval;
  const rate = (key) => samples.map((x) => x[key] * perMinute);
  const whole = (v) => String(Math.round(v));
  const tenth = (v) => (Math.round(v * 10) / 10).toString();
  const chart = (metric, title, series, format) => sparkline(title, times, series, format, `chart-${region.code}-${metric}`);
  return h('div', { class: 'spark-grid' },
    chart('agents', t('overview.chart.agents'), [{ label: t('overview.chart.connected'), values: samples.map((x) => x.agents_connected), tone: 'green' }], whole),
    chart('rtt', t('overview.chart.rtt'), [{ label: 'ms', values: samples.map((x) => x.rtt_ms), tone: 'blue' }], tenth),
    chart('tasks', t('overview.chart.tasks'), [
      { label: t('overview.chart.succeeded'), values: rate('tasks_succeeded'), tone: 'green' },
      { label: t('overview.chart.failed'), values: rate('tasks_failed'), tone: 'red' }], tenth),
    chart('demos', t('overview.chart.demos'), [
      { label: t('overview.chart.online'), values: samples.map((x) => x.demos_online), tone: 'green' },
      { label: t('overview.chart.failed'), values: samples.map((x) => x.demos_failed), tone: 'red' }], whole),
    chart('logs', t('overview.chart.logs'), [{ label: t('overview.chart.perMinute'), values: rate('log_lines'), tone: 'blue' }], whole));
}

function renderOverview(regions, clusters, demos, failed, fleet) {
  const clusterMap = byId(clusters);
  const regionMap = byId(regions);
  const fleetMap = byId(fleet && fleet.regions);
  const interval = (fleet && fleet.sample_interval_seconds) || 60;
  const stat = (label, value, total, cls) => h('div', { class: ['stat', cls] },
    h('div', { class: 'stat-value' }, String(value), total != null ? h('span', { class: 'stat-total' }, ` / ${total}`) : null),
    h('div', { class: 'stat-label' }, label));
  const stats = h('div', { class: 'stats' },
    stat(t('overview.stat.regions'), regions.filter((r) => r.enabled).length, regions.length),
    stat(t('overview.stat.clusters'), clusters.filter((c) => c.status === 'ready').length, clusters.length),
    stat(t('overview.stat.agents'), clusters.filter((c) => c.agent && c.agent.connected).length, clusters.length),
    stat(t('overview.stat.demos'), demos.filter((d) => d.status === 'online').length, demos.length),
    stat(t('overview.stat.failed'), failed.length, null, failed.length ? 'stat-bad' : null));

  const clusterLine = (c) => h('li', { class: 'region-cluster', 'data-testid': `overview-cluster-${c.name}` },
    link(`#/clusters/${enc(c.id)}`, c.name, { class: 'strong' }),
    badge(c.status), agentBadge(c.agent),
    h('span', { class: 'muted small' }, c.agent && c.agent.last_heartbeat_at ? timeEl(c.agent.last_heartbeat_at) : t('common.none')));
  const regionCards = regions.map((r) => {
    const own = clusters.filter((c) => c.region_id === r.id);
    const health = fleetMap.get(r.id);
    const status = health ? health.health : (r.enabled ? 'enabled' : 'disabled');
    const summary = health
      ? `${t('overview.agents', { connected: health.agents_connected, total: health.clusters })}${health.rtt_ms != null ? ` · ${Math.round(health.rtt_ms * 10) / 10} ms` : ''}`
      : `${r.code} · ${r.cloud_name || ''}`;
    return h('div', { class: ['region-card', `health-${HEALTH_TONE[status] || 'grey'}`], 'data-testid': `overview-region-${r.code}` },
      h('div', { class: 'region-card-head' },
        h('div', null, h('strong', null, regionLabel(r)), h('div', { class: 'muted small' }, `${r.code} · ${r.cloud_name || ''}`),
          health ? h('div', { class: 'small' }, summary) : null),
        health
          ? h('span', { class: `badge badge-${HEALTH_TONE[status] || 'grey'}`, 'data-value': status, 'data-testid': `region-health-${r.code}` }, t(`health.${status}`))
          : badge(status)),
      own.length ? h('ul', { class: 'region-clusters' }, own.map(clusterLine)) : h('p', { class: 'muted small' }, t('overview.noClusters')),
      health ? regionCharts(health, interval) : null);
  });
  const orphans = clusters.filter((c) => !regionMap.has(c.region_id));
  if (orphans.length) {
    regionCards.push(h('div', { class: 'region-card' }, h('div', { class: 'region-card-head' }, h('strong', null, t('overview.other'))),
      h('ul', { class: 'region-clusters' }, orphans.map(clusterLine))));
  }

  const demoTable = table([
    { label: t('common.name'), cell: (d) => link(`#/demos/${enc(d.id)}`, d.name) },
    { label: t('common.status'), cell: (d) => badge(d.status) },
    { label: t('demos.url'), cell: (d) => (d.url ? externalLink(d.url) : dash()) },
    { label: t('common.updated'), cell: (d) => timeEl(d.updated_at) },
  ], demos.slice(0, 8), { empty: t('demos.noDemos') });
  const taskTable = table([
    { label: t('task.kind'), cell: (x) => link(`#/tasks/${enc(x.id)}`, x.kind) },
    { label: t('common.cluster'), cell: (x) => clusterLink(x.cluster_id, clusterMap) },
    { label: t('task.error'), cell: (x) => h('span', { class: 'clip', title: x.error || '' }, orDash(x.error)) },
    { label: t('task.finished'), cell: (x) => timeEl(x.finished_at || x.updated_at) },
  ], failed, { empty: t('overview.noFailed') });

  return [
    stats,
    card(t('overview.regions'), regionCards.length ? h('div', { class: 'region-grid' }, regionCards) : h('p', { class: 'muted' }, t('overview.noRegions'))),
    h('div', { class: 'grid-2' }, card(t('overview.recentDemos'), demoTable), card(t('overview.failedTasks'), taskTable)),
  ];
}
