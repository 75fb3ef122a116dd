// Shared page helpers.

import { enc, fmtClock, fmtTime, h } from '../dom.js';
import { api } from '../api.js';
import { badge, dash, levelBadge, link } from '../ui.js';

/** GETs several paths at once; a failed one yields `fallback` (lookups for names are best effort). */
export async function getAll(paths, fallback = []) {
  const results = await Promise.allSettled(paths.map((p) => api('GET', p)));
  return results.map((r) => {
    if (r.status === 'fulfilled') return r.value;
    if (r.reason && r.reason.status === 401) throw r.reason;
    return fallback;
  });
}

export const byId = (list) => new Map((list || []).map((x) => [x.id, x]));
export const regionLabel = (r) => (r ? r.display_name || r.code : null);

export function clusterLink(id, clusters) {
  if (!id) return dash();
  const c = clusters && clusters.get(id);
  return link(`#/clusters/${enc(id)}`, c ? c.name : id.slice(0, 8));
}

export function agentBadge(agent) {
  return badge(agent && agent.connected ? 'connected' : 'disconnected', { 'data-testid': 'agent-connected' });
}

export function split(main, aside) {
  return aside ? h('div', { class: 'split' }, h('div', { class: 'split-main' }, main), h('div', { class: 'split-aside' }, aside)) : main;
}

export function logLineEl(line) {
  const where = [line.pod, line.container].filter(Boolean).join('/') || line.source || '';
  return h('div', { class: `log-line log-${line.level || 'info'}`, 'data-testid': 'log-line', 'data-level': line.level || '' },
    h('time', { class: 'log-time', datetime: line.time || '', title: fmtTime(line.time) }, fmtClock(line.time)),
    levelBadge(line.level),
    where ? h('span', { class: 'log-src' }, where) : null,
    h('span', { class: 'log-msg' }, String(line.message ?? '')));
}
