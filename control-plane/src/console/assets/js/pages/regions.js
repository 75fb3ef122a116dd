// Regions.

import { t, tStatus } from '../i18n.js';
import { enc, h, timeEl } from '../dom.js';
import { api, can } from '../api.js';
import { actionButton, badge, card, dash, fill, link, orDash, pageHead, table, toast } from '../ui.js';
import { checkbox, field, form, input, select } from '../forms.js';
import { split } from './shared.js';

export async function pageRegions(ctx, page) {
  const list = h('div');
  const aside = can('admin') ? h('div') : null;
  const load = () => fill(list, () => api('GET', '/regions'), (regions) => table([
    { label: t('regions.cloud'), cell: (r) => h('span', null, r.cloud_name || dash(), h('span', { class: 'muted small' }, ` · ${r.provider ? t(`provider.${r.provider}`) : ''}`)) },
    { label: t('regions.code'), cell: (r) => h('code', null, r.code) },
    { label: t('regions.displayName'), cell: (r) => orDash(r.display_name) },
    { label: t('common.status'), cell: (r) => badge(r.enabled ? 'enabled' : 'disabled', { 'data-testid': `region-status-${r.code}` }) },
    { label: t('regions.clusters'), cell: (r) => String(r.cluster_count ?? 0), class: 'num' },
    { label: t('common.created'), cell: (r) => timeEl(r.created_at) },
    can('admin') && {
      label: '', class: 'row-actions',
      cell: (r) => actionButton(r.enabled ? t('regions.disable') : t('regions.enable'), async () => {
        const changed = await api('PATCH', `/regions/${enc(r.id)}`, { enabled: !r.enabled });
        toast(t('regions.toggled', { name: changed.code, state: tStatus(changed.enabled ? 'enabled' : 'disabled') }));
        load();
      }, { class: 'btn btn-small', 'data-testid': `region-toggle-${r.code}` }),
    },
  ].filter(Boolean), regions, { rowAttrs: (r) => ({ 'data-testid': `region-row-${r.code}` }) }));

  page.append(pageHead(t('nav.regions')), split(card(t('regions.list'), list), aside && card(t('regions.add'), aside)));
  if (aside) fill(aside, () => api('GET', '/clouds'), (clouds) => regionForm(clouds, load));
  await load();
}

function regionForm(clouds, onCreated) {
  if (!clouds.length) return h('p', { class: 'muted' }, t('regions.noClouds'), ' ', link('#/clouds', t('nav.clouds')));
  return form({ 'data-testid': 'region-form' }, [
    field(t('regions.cloud'), select('cloud_account_id', clouds.map((c) => [c.id, `${c.name} (${t(`provider.${c.provider}`)})`])), { required: true }),
    field(t('regions.code'), input('code', { required: true, placeholder: 'ap-shanghai', spellcheck: 'false' }), { required: true }),
    field(t('regions.displayName'), input('display_name', { placeholder: 'Shanghai' }), { optional: true }),
    checkbox('enabled', t('regions.enabled'), true),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'region-submit' }, t('common.create'))),
  ], async (v, el) => {
    const body = { cloud_account_id: v.cloud_account_id, code: v.code, enabled: v.enabled };
    if (v.display_name) body.display_name = v.display_name;
    const created = await api('POST', '/regions', body);
    el.reset();
    toast(t('regions.created', { name: created.code }));
    onCreated();
  });
}
