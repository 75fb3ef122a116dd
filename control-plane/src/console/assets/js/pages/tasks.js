// Tasks: list and task page, and the task views the cluster page shares.

import { t, tStatus } from '../i18n.js';
import { enc, h, put, qs, timeEl } from '../dom.js';
import { api, can } from '../api.js';
import {
  actionButton, alertBox, badge, button, card, confirmDialog, dash, fill, FINISHED, link, loadingEl, orDash, pageHead,
  pagerEl, props, table, toast,
} from '../ui.js';
import { field, form, select } from '../forms.js';
import { setQuery } from '../shell.js';
import { byId, clusterLink, getAll, logLineEl } from './shared.js';

const TASK_STATES = ['pending', 'leased', 'running', 'succeeded', 'failed', 'cancelled'];
const TASK_PAGE = 25;

export function taskTable(tasks, clusters) {
  return table([
    { label: t('common.created'), cell: (x) => timeEl(x.created_at) },
    { label: t('task.kind'), cell: (x) => link(`#/tasks/${enc(x.id)}`, x.kind, { class: 'strong' }) },
    clusters && { label: t('common.cluster'), cell: (x) => clusterLink(x.cluster_id, clusters) },
    { label: t('task.state'), cell: (x) => badge(x.state) },
    { label: t('task.attempts'), cell: (x) => `${x.attempts ?? 0}/${x.max_attempts ?? '?'}`, class: 'num' },
    { label: t('task.reason'), cell: (x) => h('span', { class: 'clip', title: x.reason || '' }, orDash(x.reason)) },
    { label: t('task.error'), cell: (x) => (x.error ? h('span', { class: 'clip text-bad', title: x.error }, x.error) : dash()) },
  ].filter(Boolean), tasks, { pageSize: 1000, rowAttrs: (x) => ({ 'data-testid': 'task-row', 'data-state': x.state }) });
}

export async function pageTasks(ctx, page, _args, query) {
  const offset = Math.max(0, Number(query.get('offset')) || 0);
  const stateFilter = query.get('state') || '';
  const clusterFilter = query.get('cluster_id') || '';
  const list = h('div', null, loadingEl());
  const [clusters] = await getAll(['/clusters']);
  const filters = form({ class: 'form filters', 'data-testid': 'task-filters' }, [
    field(t('tasks.filterState'), select('state', [['', t('common.all')], ...TASK_STATES.map((s) => [s, tStatus(s)])], { value: stateFilter })),
    field(t('tasks.filterCluster'), select('cluster_id', [['', t('common.all')], ...clusters.map((c) => [c.id, c.name])], { value: clusterFilter })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('common.search'))),
  ], async (v) => setQuery({ state: v.state, cluster_id: v.cluster_id }));
  for (const s of filters.querySelectorAll('select')) s.addEventListener('change', () => filters.requestSubmit());
  page.append(pageHead(t('nav.tasks'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })), card(null, filters, { class: 'filters-card' }), card(null, list));
  const clusterMap = byId(clusters);
  const load = () => fill(list, () => api('GET', `/tasks${qs({ state: stateFilter, cluster_id: clusterFilter, limit: TASK_PAGE, offset })}`), (tasks) => [
    taskTable(tasks, clusterMap),
    pagerEl({
      from: offset + 1, to: offset + tasks.length, hasPrev: offset > 0, hasNext: tasks.length === TASK_PAGE,
      onPrev: () => setQuery({ state: stateFilter, cluster_id: clusterFilter, offset: Math.max(0, offset - TASK_PAGE) || undefined }),
      onNext: () => setQuery({ state: stateFilter, cluster_id: clusterFilter, offset: offset + TASK_PAGE }),
    }),
  ]);
  await load();
  ctx.every(10000, load);
}

export async function pageTask(ctx, page, [id]) {
  const head = h('div', null, loadingEl());
  const body = h('div');
  const logs = taskLogView(id);
  page.append(head, body, card(t('task.logs'), logs.el, { class: 'logs-card' }));
  let clusters = new Map();
  getAll(['/clusters']).then(([cls]) => { clusters = byId(cls); }).catch(() => {});

  const draw = (x) => {
    put(head, pageHead(t('task.title', { id: x.id.slice(0, 8) }), badge(x.state, { 'data-testid': 'task-state' }),
      can('operator') && !FINISHED.has(x.state) ? actionButton(t('task.cancel'), async () => {
        if (!(await confirmDialog({ title: t('task.cancelTitle'), body: null, ok: t('task.cancel'), danger: true }))) return;
        draw(await api('POST', `/tasks/${enc(x.id)}/cancel`));
        toast(t('task.cancelled'));
      }, { class: 'btn btn-danger-ghost', 'data-testid': 'task-cancel' }) : null),
    x.error ? alertBox('error', h('span', { 'data-testid': 'task-error' }, x.error)) : null);
    const output = x.output && Object.keys(x.output).length ? x.output : null;
    put(body, 
      h('div', { class: 'grid-2' },
        card(t('common.details'), props([
          [t('task.kind'), h('code', null, x.kind)],
          [t('common.cluster'), clusterLink(x.cluster_id, clusters)],
          [t('task.state'), badge(x.state)],
          [t('task.attempts'), `${x.attempts ?? 0} / ${x.max_attempts ?? '?'}`],
          [t('task.reason'), x.reason],
          [t('task.createdBy'), x.created_by],
          [t('common.created'), timeEl(x.created_at, false)],
          [t('task.started'), x.started_at ? timeEl(x.started_at, false) : null],
          [t('task.finished'), x.finished_at ? timeEl(x.finished_at, false) : null],
          x.parent_id ? [t('common.details'), link(`#/tasks/${enc(x.parent_id)}`, x.parent_id.slice(0, 8))] : null,
          // The OpenTelemetry trace id, to look the task up in the tracing backend (only when traces are on).
          x.trace_id ? [t('task.trace'), h('code', { 'data-testid': 'task-trace' }, x.trace_id)] : null,
        ])),
        card(t('task.output'), [planSummary(x), output ? h('details', null, h('summary', null, 'JSON'), h('pre', { class: 'code' }, JSON.stringify(output, null, 2))) : dash(),
          x.payload ? h('details', null, h('summary', null, t('task.payload')), h('pre', { class: 'code' }, JSON.stringify(x.payload, null, 2))) : null])),
      card(t('task.objects'), table([
        { label: '#', cell: (o) => String(o.document_index ?? ''), class: 'num' },
        { label: t('task.object.kind'), cell: (o) => h('code', null, `${o.api_version || ''} ${o.kind || ''}`.trim()) },
        { label: t('task.object.namespace'), cell: (o) => orDash(o.namespace) },
        { label: t('common.name'), cell: (o) => orDash(o.name) },
        { label: t('task.object.outcome'), cell: (o) => badge(o.outcome) },
        { label: t('common.message'), cell: (o) => orDash(o.message) },
      ], x.objects || [], { testid: 'task-objects' })),
      card(t('task.events'), table([
        { label: t('common.time'), cell: (e) => timeEl(e.at, false) },
        { label: t('task.kind'), cell: (e) => h('code', null, e.kind || '') },
        { label: t('common.message'), cell: (e) => orDash(e.message) },
      ], x.events || [])));
  };
  let finished = false;
  ctx.poll(1000, async () => {
    const [x] = await Promise.all([api('GET', `/tasks/${enc(id)}`), logs.poll()]);
    if (!ctx.alive) return false;
    draw(x);
    if (FINISHED.has(x.state)) {
      if (!finished) { finished = true; await logs.poll(); }
      return false;
    }
    return true;
  });
}

/** Plan summary of a terraform task's output: text, counts and the changed resources. */
export function planSummary(task) {
  const plan = task && task.output && task.output.plan;
  if (!plan) return null;
  const changes = Array.isArray(plan.resource_changes) ? plan.resource_changes : [];
  return h('div', { class: 'plan-summary', 'data-testid': 'plan-summary' },
    h('p', { class: 'plan-text' }, String(plan.text || '')),
    changes.length ? h('ul', { class: 'plan-changes' }, changes.map((c) => h('li', null,
      h('span', { class: `plan-action plan-${c.action}` }, String(c.action)), h('code', null, String(c.address))))) : null);
}

/** A task's log lines, read with `after` = the last page's next_after (nanoseconds, kept as a string). */
export function taskLogView(taskId) {
  const box = h('div', { class: 'logview logview-task', 'data-testid': 'task-logs' }, h('div', { class: 'muted small log-empty' }, t('task.noLogs')));
  let after = null;
  return {
    el: box,
    async poll() {
      const data = await api('GET', `/tasks/${enc(taskId)}/logs${qs({ after, limit: 1000 })}`);
      const lines = (data && data.lines) || [];
      if (lines.length) {
        const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
        const empty = box.querySelector('.log-empty');
        if (empty) empty.remove();
        for (const line of lines) box.append(logLineEl(line));
        if (stick) box.scrollTop = box.scrollHeight;
      }
      if (data && data.next_after != null) after = data.next_after;
      else if (lines.length && lines[lines.length - 1].ts_nanos != null) after = lines[lines.length - 1].ts_nanos;
    },
  };
}
