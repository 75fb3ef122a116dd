// Templates.

import { t } from '../i18n.js';
import { enc, h, timeEl } from '../dom.js';
import { api } from '../api.js';
import { alertBox, card, dash, fill, link, loadingEl, orDash, pageHead, props, table } from '../ui.js';

export async function pageTemplates(ctx, page) {
  const list = h('div');
  page.append(pageHead(t('nav.templates')), card(t('templates.list'), list));
  await fill(list, () => api('GET', '/templates'), (templates) => table([
    { label: t('common.name'), cell: (x) => link(`#/templates/${enc(x.name)}`, x.name, { class: 'strong' }) },
    { label: t('templates.version'), cell: (x) => orDash(x.version) },
    { label: t('templates.revision'), cell: (x) => String(x.revision ?? ''), class: 'num' },
    { label: t('templates.title'), cell: (x) => orDash(x.title) },
    { label: t('templates.runtime'), cell: (x) => h('code', null, x.runtime || '') },
    { label: t('templates.port'), cell: (x) => String(x.port ?? ''), class: 'num' },
    { label: t('templates.health'), cell: (x) => h('code', null, x.health_check_path || '') },
    { label: t('templates.imageRequired'), cell: (x) => (x.image_required ? h('span', { class: 'badge badge-amber' }, t('common.yes')) : h('span', { class: 'muted' }, t('common.no'))) },
  ], templates, { rowAttrs: (x) => ({ 'data-testid': `template-row-${x.name}` }), empty: t('demos.noTemplates') }));
}

function resourcesView(resources) {
  if (!resources || typeof resources !== 'object') return dash();
  const rows = [];
  for (const kind of ['requests', 'limits']) {
    const r = resources[kind];
    if (r && typeof r === 'object') rows.push([t(`templates.${kind}`), Object.entries(r).map(([k, v]) => `${k}: ${v}`).join(', ')]);
  }
  return rows.length ? props(rows) : h('pre', { class: 'code' }, JSON.stringify(resources, null, 2));
}

export async function pageTemplate(ctx, page, [name]) {
  const body = h('div', null, loadingEl());
  page.append(pageHead(`${t('nav.templates')} / ${name}`, link('#/templates', t('common.back'), { class: 'btn btn-small' })), body);
  await fill(body, () => api('GET', `/templates/${enc(name)}`), (revisions) => {
    const x = revisions.find((r) => r.latest) || revisions[0];
    if (!x) return alertBox('info', t('common.empty'));
    return [
      h('div', { class: 'grid-2' },
        card(x.title || x.name, [
          x.description ? h('p', null, x.description) : null,
          props([
            [t('templates.version'), `${x.version} (r${x.revision})`],
            [t('templates.runtime'), h('code', null, x.runtime || '')],
            [t('templates.process'), x.process ? h('code', null, x.process) : null],
            [t('templates.port'), String(x.port ?? '')],
            [t('templates.health'), h('code', null, x.health_check_path || '')],
            [t('templates.imageRequired'), t(x.image_required ? 'common.yes' : 'common.no')],
            [t('templates.defaultImage'), x.default_image ? h('code', null, x.default_image) : null],
            [t('templates.loaded'), timeEl(x.loaded_at)],
          ])]),
        card(t('templates.resources'), resourcesView(x.resources))),
      card(t('templates.env'), table([
        { label: t('common.name'), cell: (e) => h('code', null, e.name) },
        { label: t('templates.envDefault'), cell: (e) => (e.default ? h('code', null, e.default) : dash()) },
        { label: t('templates.envRequired'), cell: (e) => t(e.required ? 'common.yes' : 'common.no') },
        { label: t('templates.envDescription'), cell: (e) => orDash(e.description) },
      ], x.env || [])),
      x.dockerfile ? card(t('templates.dockerfile'), h('pre', { class: 'code' }, x.dockerfile)) : null,
      card(t('templates.revisions'), table([
        { label: t('templates.revision'), cell: (r) => h('span', null, `r${r.revision}`, r.latest ? h('span', { class: 'badge badge-small badge-blue' }, t('templates.latest')) : null) },
        { label: t('templates.version'), cell: (r) => orDash(r.version) },
        { label: 'sha256', cell: (r) => h('code', { class: 'clip' }, (r.content_sha256 || '').slice(0, 16)) },
        { label: t('templates.loaded'), cell: (r) => timeEl(r.loaded_at) },
      ], revisions)),
    ];
  });
}
