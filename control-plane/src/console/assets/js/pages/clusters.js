// Clusters: list, registration, and a cluster's page with its Terraform actions.

import { t } from '../i18n.js';
import { enc, fmtTime, h, put, qs, timeEl } from '../dom.js';
import { api, can } from '../api.js';
import {
  actionButton, alertBox, badge, button, card, confirmDialog, copyBox, errorBlock, fill, FINISHED, link, loadingEl,
  orDash, pageHead, props, reportError, secretPanel, setTitle, table, toast,
} from '../ui.js';
import { field, form, input, select } from '../forms.js';
import { route } from '../shell.js';
import { agentBadge, byId, getAll, regionLabel, split } from './shared.js';
import { planSummary, taskLogView, taskTable } from './tasks.js';

function clusterColumns(regions) {
  return [
    { label: t('common.name'), cell: (c) => link(`#/clusters/${enc(c.id)}`, c.name, { class: 'strong' }) },
    { label: t('common.region'), cell: (c) => orDash(regionLabel(regions.get(c.region_id)) || c.region_code) },
    { label: t('common.status'), cell: (c) => badge(c.status) },
    { label: t('clusters.agent'), cell: (c) => agentBadge(c.agent) },
    { label: t('clusters.heartbeat'), cell: (c) => timeEl(c.agent && c.agent.last_heartbeat_at) },
    { label: t('clusters.agentVersion'), cell: (c) => orDash(c.agent && c.agent.version) },
    { label: t('clusters.certExpiry'), cell: (c) => timeEl(c.agent && c.agent.certificate_expires_at) },
  ];
}

export async function pageClusters(ctx, page) {
  const list = h('div');
  const pager = { page: 0 };
  let regions = [];
  const load = () => fill(list, async () => {
    const [clusters, regs] = await getAll(['/clusters', '/regions']);
    regions = regs;
    return clusters;
  }, (clusters) => table(clusterColumns(byId(regions)), clusters, { pager, rowAttrs: (c) => ({ 'data-testid': `cluster-row-${c.name}` }) }));
  const aside = can('operator') ? h('div') : null;
  page.append(pageHead(t('nav.clusters'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })),
    split(card(t('clusters.list'), list), aside && card(t('clusters.register'), aside)));
  await load();
  if (aside) put(aside, clusterForm(regions));
  ctx.every(10000, load);
}

function clusterForm(regions) {
  if (!regions.length) return h('p', { class: 'muted' }, t('clusters.noRegions'), ' ', link('#/regions', t('nav.regions')));
  return form({ 'data-testid': 'cluster-form' }, [
    field(t('common.name'), input('name', { required: true, placeholder: 'shanghai-1', spellcheck: 'false' }), { required: true }),
    field(t('common.region'), select('region_id', regions.map((r) => [r.id, `${regionLabel(r)} (${r.code})`])), { required: true }),
    field(t('clusters.roleField'), select('role', [['user', t('clusters.role.user')], ['management', t('clusters.role.management')]])),
    field(t('clusters.mode'), select('mode', [['manual', t('clusters.mode.manual')], ['terraform', t('clusters.mode.terraform')]])),
    field(t('clusters.apiEndpoint'), input('api_endpoint', { placeholder: 'https://10.0.0.10:6443', spellcheck: 'false' }), { optional: true }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'cluster-submit' }, t('common.create'))),
  ], async (v) => {
    const body = { name: v.name, region_id: v.region_id, role: v.role };
    if (v.api_endpoint) body.api_endpoint = v.api_endpoint;
    if (v.mode === 'terraform') { body.provision = {}; body.plan_only = true; }
    const created = await api('POST', '/clusters', body);
    toast(t('clusters.created', { name: created.name }));
    location.hash = `#/clusters/${enc(created.id)}`;
  });
}

/** Polls a task every second until it finishes, showing state, error, plan summary and its log lines. */
function taskTracker(ctx, task, title, onFinish) {
  const head = h('div', { class: 'tracker-head' });
  const extra = h('div');
  const logs = taskLogView(task.id);
  const el = card(title, [head, extra, logs.el], { class: 'tracker', testid: 'task-tracker', actions: link(`#/tasks/${enc(task.id)}`, t('task.open')) });
  let done = false;
  const draw = (tk) => {
    put(head, badge(tk.state, { 'data-testid': 'tracker-state' }),
      h('span', { class: 'muted small' }, `${tk.kind} · ${t('task.attempts')} ${tk.attempts ?? 0}/${tk.max_attempts ?? '?'}`),
      FINISHED.has(tk.state) ? null : h('span', { class: 'spinner' }));
    put(extra, tk.error ? alertBox('error', tk.error) : '', planSummary(tk) || '',
      tk.output && tk.output.drift ? props([[t('clusters.drift'), badge(tk.output.drift)]]) : '');
  };
  draw(task);
  ctx.poll(1000, async () => {
    const [tk] = await Promise.all([api('GET', `/tasks/${enc(task.id)}`), logs.poll()]);
    draw(tk);
    if (FINISHED.has(tk.state) && !done) {
      done = true;
      // In the same turn as the draw: whatever the result enables (e.g. the plan in the provision dialog)
      // is ready by the time a person can click on what it shows.
      if (onFinish) onFinish(tk);
      await logs.poll();
      return false;
    }
    return true;
  });
  return el;
}

export async function pageCluster(ctx, page, [id]) {
  const head = h('div', null, loadingEl());
  const info = h('div', { class: 'grid-2' });
  const actions = h('div', { class: 'page-toolbar' });
  const trackers = h('div', { class: 'trackers' });
  const sessions = h('div');
  // Drawn once and after a save, not on the periodic reload, so an edit in progress is not wiped.
  const logCollection = h('div');
  const tasks = h('div');
  let cluster = null;
  let lastPlan = null;
  let regions = new Map();
  page.append(head, actions, trackers, info, logCollection, sessions, tasks);

  const loadCluster = async () => {
    cluster = await api('GET', `/clusters/${enc(id)}`);
    drawCluster();
  };
  const loadTasks = () => fill(tasks, () => api('GET', `/tasks${qs({ cluster_id: id, limit: 20 })}`), (list) => {
    if (!lastPlan) lastPlan = list.find((x) => x.kind === 'terraform_plan' && x.state === 'succeeded') || null;
    return card(t('clusters.recentTasks'), taskTable(list, null));
  });

  const drawCluster = () => {
    const c = cluster;
    const a = c.agent || {};
    const region = regions.get(c.region_id);
    put(head, pageHead(c.name, badge(c.status, { 'data-testid': 'cluster-status' })),
      c.status_message ? alertBox(c.status === 'failed' || c.status === 'degraded' ? 'error' : 'info', c.status_message) : '');
    setTitle(`${t('nav.clusters')} / ${c.name}`);
    put(info, 
      card(t('common.details'), props([
        [t('common.region'), regionLabel(region) || c.region_code],
        [t('clusters.roleField'), c.role],
        [t('clusters.provisioning'), badge(c.provisioning)],
        [t('clusters.apiEndpoint'), c.api_endpoint ? h('code', null, c.api_endpoint) : null],
        [t('clusters.externalIp'), c.external_ip],
        [t('clusters.drift'), c.drift_status ? badge(c.drift_status) : null],
        [t('clusters.driftChecked'), c.drift_checked_at ? timeEl(c.drift_checked_at) : null],
        [t('common.created'), timeEl(c.created_at, false)],
      ])),
      card(t('clusters.agent'), props([
        [t('common.status'), agentBadge(a)],
        [t('clusters.heartbeat'), a.last_heartbeat_at ? timeEl(a.last_heartbeat_at) : null],
        a.offline_since ? [t('clusters.offlineSince'), h('span', { class: 'text-bad', 'data-testid': 'cluster-offline-since' }, timeEl(a.offline_since))] : null,
        [t('clusters.agentVersion'), a.version],
        [t('clusters.k8sVersion'), a.kubernetes_version],
        [t('clusters.nodes'), a.node_count != null ? String(a.node_count) : null],
        [t('clusters.k8sReachable'), a.kubernetes_reachable == null ? null : t(a.kubernetes_reachable ? 'common.yes' : 'common.no')],
        a.kubernetes_error ? [t('clusters.k8sError'), h('span', { class: 'text-bad' }, a.kubernetes_error)] : null,
        [t('clusters.rtt'), a.rtt_ms != null ? `${Number(a.rtt_ms).toFixed(1)} ms` : null],
        [t('clusters.certExpiry'), a.certificate_expires_at ? timeEl(a.certificate_expires_at) : null],
      ])));
    const reports = c.offline_reports || [];
    const corrections = reports.flatMap((r) => r.corrections.map((x) => ({ ...x, report: r })));
    put(sessions, reports.length ? card(t('clusters.offlineReports'), h('div', { 'data-testid': 'cluster-offline-reports' },
      h('p', { class: 'muted' }, t('clusters.offlineReportsHint')),
      table([
        { label: t('clusters.offlineSince'), cell: (r) => timeEl(r.offline_since) },
        { label: t('clusters.backAt'), cell: (r) => timeEl(r.back_at) },
        { label: t('clusters.offlineChecks'), cell: (r) => `${r.checks} × ${r.objects}` },
        { label: t('clusters.offlineCorrections'), cell: (r) => String(r.corrections.length + r.corrections_not_listed) },
      ], reports),
      corrections.length ? table([
        { label: t('common.time'), cell: (x) => timeEl(x.at) },
        { label: t('clusters.offlineAction'), cell: (x) => badge(x.action) },
        { label: t('clusters.offlineObject'), cell: (x) => h('code', null, `${x.kind} ${x.namespace ? `${x.namespace}/` : ''}${x.name}`) },
        { label: t('clusters.offlineDetail'), cell: (x) => orDash(x.detail) },
      ], corrections) : '')) : '',
    card(t('clusters.sessions'), table([
      { label: t('clusters.instance'), cell: (s) => h('code', null, s.instance) },
      { label: t('clusters.agentVersion'), cell: (s) => orDash(s.agent_version) },
      { label: t('clusters.peer'), cell: (s) => orDash(s.peer_addr) },
      { label: t('clusters.connectedAt'), cell: (s) => timeEl(s.connected_at) },
      { label: t('clusters.lastSeen'), cell: (s) => timeEl(s.last_seen_at) },
      { label: t('clusters.disconnectedAt'), cell: (s) => (s.disconnected_at ? timeEl(s.disconnected_at) : badge('connected')) },
    ], c.sessions || [])));
  };

  const drawLogSelection = () => {
    const sel = cluster.log_selection || { all_namespaces: false, namespaces: [] };
    const chosen = sel.all_namespaces ? t('clusters.logsAll')
      : sel.namespaces.length ? sel.namespaces.join(', ') : t('clusters.logsLabelsOnly');
    const body = [
      h('p', { class: 'muted small' }, t('clusters.logsHint')),
      props([[t('clusters.logsChosen'), h('span', { 'data-testid': 'log-selection' }, chosen)]]),
      h('p', null, link(`#/logs${qs({ cluster_id: id })}`, t('clusters.viewLogs'), { 'data-testid': 'cluster-logs-link' })),
    ];
    if (can('operator')) {
      const all = h('input', { type: 'checkbox', name: 'all_namespaces', checked: sel.all_namespaces, 'data-testid': 'log-selection-all' });
      const names = input('namespaces', { value: sel.namespaces.join(', '), placeholder: 'shop, payments', 'data-testid': 'log-selection-namespaces' });
      body.push(form({ 'data-testid': 'log-selection-form' }, [
        field(t('clusters.logsNamespaces'), names, { hint: t('clusters.logsNamespacesHint') }),
        h('label', { class: 'check' }, all, h('span', null, t('clusters.logsAllField'))),
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn', 'data-testid': 'log-selection-save' }, t('common.save'))),
      ], async () => {
        const namespaces = names.value.split(/[\s,]+/).filter(Boolean);
        cluster = { ...cluster, ...(await api('PUT', `/clusters/${enc(id)}/log-selection`, { all_namespaces: all.checked, namespaces })) };
        toast(t('clusters.logsSaved'));
        drawLogSelection();
      }));
    }
    put(logCollection, card(t('clusters.logs'), body, { testid: 'cluster-log-selection' }));
  };

  const track = (task, title, after) => {
    trackers.prepend(taskTracker(ctx, task, title, (done) => {
      if (after) after(done);
      loadCluster().catch(reportError);
      loadTasks();
    }));
  };
  const terraform = (kind, title, after) => async () => {
    const task = await api('POST', `/clusters/${enc(id)}/${kind}`, {});
    track(task, title, after);
  };
  const provision = async () => {
    // A plan that finished since the page loaded its task list is looked up, so the dialog never claims there is none.
    if (!lastPlan) {
      const list = await api('GET', `/tasks${qs({ cluster_id: id, limit: 20 })}`);
      lastPlan = list.find((x) => x.kind === 'terraform_plan' && x.state === 'succeeded') || null;
    }
    const ok = await confirmDialog({
      title: t('clusters.provisionTitle', { name: cluster.name }),
      body: [h('p', null, t('clusters.provisionBody')), lastPlan ? [h('h3', null, t('clusters.planSummary')), planSummary(lastPlan)] : alertBox('warn', t('clusters.noPlan'))],
      ok: t('clusters.provision'),
    });
    if (ok) await terraform('provision', t('clusters.provisionTask'))();
  };
  const destroy = async () => {
    const ok = await confirmDialog({ title: t('clusters.destroyTitle', { name: cluster.name }), body: h('p', null, t('clusters.destroyBody')), ok: t('clusters.destroy'), danger: true, typed: cluster.name });
    if (!ok) return;
    const res = await api('DELETE', `/clusters/${enc(id)}`);
    if (res && res.id) {
      toast(t('clusters.destroyQueued', { name: cluster.name }));
      track(res, t('clusters.destroyTask'));
    } else {
      toast(t('clusters.deleted', { name: cluster.name }));
      location.hash = '#/clusters';
    }
  };
  const bootstrap = async () => {
    const res = await api('POST', `/clusters/${enc(id)}/bootstrap-tokens`, {});
    const install = res.install || {};
    trackers.prepend(secretPanel(t('clusters.tokenTitle'), res.token, 'bootstrap-token',
      h('p', { class: 'muted small' }, t('clusters.tokenExpires', { time: fmtTime(res.expires_at) })),
      install.manifest ? [h('h3', null, t('clusters.installManifest')), copyBox(install.manifest, 'install-manifest')] : null,
      install.command ? [h('h3', null, t('clusters.installCommand')), copyBox(install.command, 'install-command')] : null));
  };

  const drawActions = () => {
    if (!can('operator')) return;
    put(actions, h('div', { class: 'toolbar' },
      actionButton(t('clusters.plan'), terraform('plan', t('clusters.planTask'), (tk) => { if (tk.state === 'succeeded') lastPlan = tk; }), { class: 'btn', 'data-testid': 'cluster-plan' }),
      actionButton(t('clusters.provision'), provision, { class: 'btn btn-primary', 'data-testid': 'cluster-provision' }),
      actionButton(t('clusters.driftCheck'), terraform('drift-check', t('clusters.driftTask')), { class: 'btn', 'data-testid': 'cluster-drift' }),
      actionButton(t('clusters.bootstrap'), bootstrap, { class: 'btn', 'data-testid': 'cluster-bootstrap' }),
      h('span', { class: 'spacer' }),
      actionButton(t('clusters.destroy'), destroy, { class: 'btn btn-danger', 'data-testid': 'cluster-destroy' })),
    cluster.provisioning === 'manual' ? h('p', { class: 'muted small' }, t('clusters.manualHint')) : null);
  };

  try {
    const [regs] = await getAll(['/regions']);
    regions = byId(regs);
    await loadCluster();
    drawLogSelection();
  } catch (err) {
    put(head, pageHead(t('nav.clusters')), errorBlock(err, route));
    return;
  }
  drawActions();
  loadTasks();
  ctx.every(10000, () => loadCluster().catch(() => {}));
}
