// Demos: list, one-click deploy, demo page with live steps (its logs: demo-logs.js).

import { t, tStatus } from '../i18n.js';
import { enc, h, put, timeEl } from '../dom.js';
import { api, can } from '../api.js';
import {
  actionButton, alertBox, badge, button, card, confirmDialog, dash, errorBlock, externalLink, fill, link, loadingEl,
  orDash, pageHead, props, reportError, setTitle, table, toast,
} from '../ui.js';
import { envEditor, field, form, input, select } from '../forms.js';
import { route } from '../shell.js';
import { demoLogsPanel } from './demo-logs.js';
import { byId, clusterLink, getAll, regionLabel, split } from './shared.js';

export async function pageDemos(ctx, page) {
  const list = h('div');
  const aside = can('operator') ? h('div', null, loadingEl()) : null;
  const pager = { page: 0 };
  let regions = new Map();
  const load = () => fill(list, async () => {
    const [demos, regs] = await getAll(['/demos', '/regions']);
    regions = byId(regs);
    return demos;
  }, (demos) => table([
    { label: t('common.name'), cell: (d) => link(`#/demos/${enc(d.id)}`, d.name, { class: 'strong' }) },
    { label: t('common.status'), cell: (d) => badge(d.status) },
    { label: t('common.region'), cell: (d) => orDash(regionLabel(regions.get(d.region_id)) || d.requested_region) },
    { label: t('demos.currentStep'), cell: (d) => (d.current_step ? t(`step.${d.current_step}`) : dash()) },
    { label: t('demos.url'), cell: (d) => (d.url ? externalLink(d.url) : dash()) },
    { label: t('common.updated'), cell: (d) => timeEl(d.updated_at) },
  ], demos, { pager, empty: t('demos.noDemos'), rowAttrs: (d) => ({ 'data-testid': `demo-row-${d.name}` }) }));
  page.append(pageHead(t('nav.demos'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })),
    split(card(t('demos.list'), list), aside && card(t('demos.deploy'), aside, { class: 'deploy-card' })));
  if (aside) fill(aside, () => getAll(['/templates', '/regions']), ([templates, regs]) => deployForm(templates, regs));
  await load();
  ctx.every(10000, load);
}

function deployForm(templates, regions) {
  if (!templates.length) return h('p', { class: 'muted' }, t('demos.noTemplates'));
  let idempotencyKey = randomKey();
  const tpl = select('template', templates.map((x) => [x.name, x.title ? `${x.title} (${x.name})` : x.name]), { 'data-testid': 'deploy-template' });
  const image = input('image', { spellcheck: 'false', placeholder: 'registry.example.com/app:1.0' });
  const imageField = field(t('demos.image'), image);
  const env = envEditor();
  const current = () => templates.find((x) => x.name === tpl.value);
  const onTemplate = () => {
    const x = current();
    image.placeholder = x && x.default_image ? x.default_image : 'registry.example.com/app:1.0';
    image.required = !!(x && x.image_required);
    imageField.classList.toggle('is-required', image.required);
    const hint = imageField.querySelector('.hint') || imageField.appendChild(h('div', { class: 'hint' }));
    hint.textContent = image.required ? t('demos.imageRequired') : (x && x.default_image ? t('demos.imageDefault', { image: x.default_image }) : '');
    env.setSuggestions((x && x.env) || []);
  };
  tpl.addEventListener('change', onTemplate);
  onTemplate();
  const regionOptions = [['auto', t('demos.auto')], ...regions.filter((r) => r.enabled).map((r) => [r.id, `${regionLabel(r)} (${r.code})`])];
  return form({ 'data-testid': 'deploy-form' }, [
    field(t('common.name'), input('name', { required: true, maxlength: 40, placeholder: 'hello-ml', spellcheck: 'false' }), { required: true }),
    field(t('demos.template'), tpl, { required: true }),
    imageField,
    field(t('demos.region'), select('region', regionOptions, { 'data-testid': 'deploy-region' }), { required: true }),
    field(t('demos.env'), env.el),
    field(t('demos.replicas'), input('replicas', { type: 'number', min: 0, max: 20, value: '1' })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'deploy-submit' }, t('demos.submit'))),
  ], async (v) => {
    const body = { name: v.name, template: v.template, region: v.region, env: env.value(), idempotency_key: idempotencyKey };
    if (v.image) body.image = v.image;
    if (v.replicas !== '') body.replicas = Number(v.replicas);
    const demo = await api('POST', '/demos', body);
    idempotencyKey = randomKey();
    location.hash = `#/demos/${enc(demo.id)}`;
  });
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const STEP_ICON = { pending: '', running: '', succeeded: '✓', failed: '✕' };

/** The vertical stepper; update({step, state, message}) changes one item in place. */
function stepperView(steps) {
  const items = new Map();
  const list = h('ol', { class: 'stepper', 'data-testid': 'demo-steps' });
  const set = (item, s, index) => {
    item.li.dataset.state = s.state;
    item.li.className = `step step-${s.state}`;
    put(item.icon, s.state === 'running' ? h('span', { class: 'spinner spinner-small' }) : (STEP_ICON[s.state] || String(index + 1)));
    item.stateEl.textContent = tStatus(s.state);
    if (s.attempt && s.attempt > 1) item.stateEl.textContent += ` · ${t('step.attempt', { n: s.attempt })}`;
    if (s.finished_at || s.started_at) put(item.time, ' · ', timeEl(s.finished_at || s.started_at));
    item.message.textContent = s.message || '';
    item.message.hidden = !s.message;
  };
  [...steps].sort((a, b) => a.position - b.position).forEach((s, index) => {
    const item = {
      li: h('li', { 'data-testid': `step-${s.name}` }),
      icon: h('span', { class: 'step-icon', 'aria-hidden': 'true' }),
      stateEl: h('span', { class: 'step-state' }),
      time: h('span', { class: 'step-time' }),
      message: h('p', { class: 'step-message' }),
      index,
    };
    item.li.append(item.icon, h('div', { class: 'step-body' },
      h('div', { class: 'step-title' }, t(`step.${s.name}`), h('code', { class: 'step-name' }, s.name)),
      h('div', { class: 'step-meta' }, item.stateEl, item.time), item.message));
    set(item, s, index);
    items.set(s.name, item);
    list.append(item.li);
  });
  return {
    el: list,
    has: (name) => items.has(name),
    update(s) { const item = items.get(s.step); if (item) set(item, { ...s, name: s.step }, item.index); },
  };
}

export async function pageDemo(ctx, page, [id]) {
  const head = h('div', null, loadingEl());
  const stepsBox = h('div');
  const actionsBox = h('div');
  const infoBox = h('div');
  const versionsBox = h('div');
  const logsBox = h('div');
  let demo = null;
  let stepper = null;
  let events = null;
  let versions = [];
  let names = { templates: new Map(), regions: new Map(), clusters: new Map() };
  page.append(head, h('div', { class: 'demo-grid' },
    h('div', { class: 'demo-main' }, stepsBox, actionsBox, versionsBox),
    h('div', { class: 'demo-side' }, infoBox)), logsBox);

  const drawHead = () => {
    const d = demo;
    put(head, 
      pageHead(d.name, badge(d.status, { 'data-testid': 'demo-status' })),
      h('div', { class: 'demo-url-bar' }, h('span', { class: 'label' }, t('demos.url')),
        d.url ? externalLink(d.url, { 'data-testid': 'demo-url' }) : h('span', { class: 'muted', 'data-testid': 'demo-url' }, t('demos.noUrl'))),
      d.error ? alertBox('error', h('span', { 'data-testid': 'demo-error' }, d.error)) : null,
      d.deleted_at ? alertBox('info', t('demos.closedNote')) : null);
    setTitle(`${t('nav.demos')} / ${d.name}`);
  };
  const drawInfo = () => {
    const d = demo;
    const tpl = names.templates.get(d.template_id);
    const cfg = d.config || {};
    put(infoBox, card(t('common.details'), props([
      [t('demos.template'), tpl ? link(`#/templates/${enc(tpl.name)}`, `${tpl.name} r${tpl.revision}`) : d.template_id],
      [t('demos.image'), h('code', { class: 'break' }, d.image || '')],
      [t('common.region'), regionLabel(names.regions.get(d.region_id)) || d.requested_region],
      [t('demos.regionReason'), d.region_reason],
      [t('common.cluster'), d.cluster_id ? clusterLink(d.cluster_id, names.clusters) : null],
      [t('demos.version'), String(d.version)],
      [t('demos.replicas'), cfg.replicas != null ? String(cfg.replicas) : null],
      [t('demos.env'), cfg.env && Object.keys(cfg.env).length ? h('div', { class: 'chips' }, Object.entries(cfg.env).map(([k, v]) => h('code', { class: 'chip' }, `${k}=${v}`))) : null],
      [t('demos.owner'), d.owner],
      [t('common.created'), timeEl(d.created_at)],
      [t('common.updated'), timeEl(d.updated_at)],
    ])));
  };
  const drawSteps = () => {
    stepper = stepperView(demo.steps || []);
    put(stepsBox, card(`${t('demos.steps')} · v${demo.version}`, stepper.el));
  };
  const drawVersions = () => {
    put(versionsBox, card(t('demos.versions'), table([
      { label: t('demos.version'), cell: (v) => h('span', null, `v${v.version}`, v.version === demo.version ? h('span', { class: 'badge badge-small badge-blue' }, t('demos.current')) : null) },
      { label: t('demos.versionReason'), cell: (v) => orDash(v.reason) },
      { label: t('demos.image'), cell: (v) => h('code', { class: 'clip' }, v.image || '') },
      { label: t('demos.replicas'), cell: (v) => orDash(v.config && v.config.replicas), class: 'num' },
      { label: t('task.createdBy'), cell: (v) => orDash(v.created_by) },
      { label: t('common.created'), cell: (v) => timeEl(v.created_at) },
    ], versions, { pageSize: 10 })));
  };
  const drawAll = () => { drawHead(); drawInfo(); drawSteps(); drawActions(); };

  let refreshing = null;
  let again = false;
  const refresh = async () => {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      do {
        again = false;
        const [d, vs] = await Promise.all([api('GET', `/demos/${enc(id)}`), api('GET', `/demos/${enc(id)}/versions`).catch(() => versions)]);
        demo = d;
        versions = vs;
        drawAll();
        drawVersions();
      } while (again && ctx.alive);
    })().finally(() => { refreshing = null; });
    return refreshing;
  };
  const follow = () => {
    if (events || demo.status === 'closed') return;
    events = ctx.stream(`/api/v1/demos/${enc(id)}/events`, {
      step: (s) => {
        if (s.version > demo.version || !stepper.has(s.step)) { refresh().catch(reportError); return; }
        if (s.version === demo.version) {
          stepper.update(s);
          const known = (demo.steps || []).find((x) => x.name === s.step);
          if (known) Object.assign(known, { state: s.state, message: s.message });
          drawActions();
        }
      },
      demo: (d) => {
        if (d.version > demo.version) { refresh().catch(reportError); return; }
        Object.assign(demo, { status: d.status, current_step: d.current_step, url: d.url, error: d.error });
        drawHead();
        drawActions();
      },
      done: () => {
        if (events) events.close();
        events = null;
        refresh().catch(reportError);
      },
      onerror: (ev, es) => {
        // The server ends the stream after `done`; anything else is a dropped connection: reopen later.
        if (es.readyState === EventSource.CLOSED && events === es) { events = null; ctx.later(3000, follow); }
      },
    });
  };
  const act = async (path, body) => {
    const d = await api('POST', `/demos/${enc(id)}/${path}`, body);
    toast(t('demos.queued', { v: d.version }));
    demo = d;
    drawAll();
    follow();
    refresh().catch(reportError);
  };

  const drawActions = () => {
    if (!can('operator') || !demo) return;
    const d = demo;
    if (d.status === 'closed' || d.deleted_at) { put(actionsBox); return; }
    const deleting = !!d.delete_requested_at;
    const failedStep = (d.steps || []).some((s) => s.state === 'failed');
    const replicas = d.config && d.config.replicas;
    const stopped = d.status === 'offline' || replicas === 0;
    const others = versions.filter((v) => v.version !== d.version && v.reason !== 'delete');
    const rollbackSel = select('version', others.map((v) => [String(v.version), `v${v.version}${v.reason ? ' · ' + v.reason : ''}`]), { 'data-testid': 'rollback-version', 'aria-label': t('demos.rollbackTo') });
    const updatePanel = h('div', { class: 'update-panel', hidden: true });
    const toolbar = h('div', { class: 'toolbar' },
      deleting ? null : button(t('demos.update'), () => {
        updatePanel.hidden = !updatePanel.hidden;
        if (!updatePanel.hidden && !updatePanel.firstChild) updatePanel.append(updateForm());
      }, { class: 'btn', 'data-testid': 'demo-update' }),
      !deleting && others.length ? h('span', { class: 'inline-group' }, rollbackSel,
        actionButton(t('demos.rollback'), async () => {
          const v = Number(rollbackSel.value);
          if (await confirmDialog({ title: t('demos.rollbackTitle', { v }), body: null })) await act('rollback', { version: v });
        }, { class: 'btn', 'data-testid': 'demo-rollback' })) : null,
      deleting ? null : stopped
        ? actionButton(t('demos.start'), () => act('start'), { class: 'btn', 'data-testid': 'demo-start' })
        : actionButton(t('demos.stop'), async () => {
          if (await confirmDialog({ title: t('demos.stopTitle', { name: d.name }), body: h('p', null, t('demos.stopBody')), ok: t('demos.stop') })) await act('stop');
        }, { class: 'btn', 'data-testid': 'demo-stop' }),
      failedStep ? actionButton(t('demos.retry'), () => act('retry'), { class: 'btn btn-primary', 'data-testid': 'demo-retry' }) : null,
      h('span', { class: 'spacer' }),
      deleting ? null : actionButton(t('common.delete'), async () => {
        const ok = await confirmDialog({ title: t('demos.deleteTitle', { name: d.name }), body: h('p', null, t('demos.deleteBody')), ok: t('common.delete'), danger: true });
        if (!ok) return;
        demo = await api('DELETE', `/demos/${enc(id)}`);
        toast(t('demos.deleting'));
        drawAll();
        follow();
      }, { class: 'btn btn-danger', 'data-testid': 'demo-delete' }));
    put(actionsBox, card(t('common.actions'), [toolbar, updatePanel]));
  };
  const updateForm = () => {
    const cfg = demo.config || {};
    const env = envEditor(cfg.env || {});
    return form({ 'data-testid': 'update-form', class: 'form form-inline-card' }, [
      h('h3', null, t('demos.updateTitle')),
      field(t('demos.image'), input('image', { value: demo.image || '', spellcheck: 'false' })),
      field(t('demos.env'), env.el),
      field(t('demos.replicas'), input('replicas', { type: 'number', min: 0, max: 20, value: cfg.replicas != null ? String(cfg.replicas) : '' })),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'update-submit' }, t('demos.update'))),
    ], async (v) => {
      const body = {};
      if (v.image && v.image !== demo.image) body.image = v.image;
      const newEnv = env.value();
      if (JSON.stringify(newEnv) !== JSON.stringify(cfg.env || {})) body.env = newEnv;
      if (v.replicas !== '' && Number(v.replicas) !== cfg.replicas) body.replicas = Number(v.replicas);
      await act('update', body);
    });
  };

  try {
    await refresh();
  } catch (err) {
    put(head, pageHead(t('nav.demos')), errorBlock(err, route));
    return;
  }
  follow();
  getAll(['/templates?all=true', '/regions', '/clusters']).then(([tpls, regs, cls]) => {
    names = { templates: byId(tpls), regions: byId(regs), clusters: byId(cls) };
    if (ctx.alive) drawInfo();
  }).catch(() => {});
  logsBox.append(demoLogsPanel(ctx, id));
}
