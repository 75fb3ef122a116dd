// Audit log (admin).

import { t } from '../i18n.js';
import { h, localInputToRfc3339, qs, rfc3339ToLocalInput, timeEl } from '../dom.js';
import { api } from '../api.js';
import {
  badge, button, card, dash, fill, httpStatusBadge, loadingEl, orDash, pageHead, pagerEl, table,
} from '../ui.js';
import { field, form, input } from '../forms.js';
import { setQuery } from '../shell.js';

const AUDIT_PAGE = 50;

export async function pageAudit(ctx, page, _args, query) {
  const q = Object.fromEntries(['actor', 'action', 'since', 'until'].map((k) => [k, query.get(k) || '']));
  const offset = Math.max(0, Number(query.get('offset')) || 0);
  const list = h('div', null, loadingEl());
  const filters = form({ class: 'form filters', 'data-testid': 'audit-filters' }, [
    field(t('audit.actor'), input('actor', { value: q.actor })),
    field(t('audit.action'), input('action', { value: q.action, placeholder: 'demo.create' })),
    field(t('common.since'), input('since', { type: 'datetime-local', value: rfc3339ToLocalInput(q.since) })),
    field(t('common.until'), input('until', { type: 'datetime-local', value: rfc3339ToLocalInput(q.until) })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'audit-search' }, t('common.search')),
      button(t('common.reset'), () => setQuery({}), { class: 'btn' })),
  ], async (v) => setQuery({ actor: v.actor, action: v.action, since: localInputToRfc3339(v.since), until: localInputToRfc3339(v.until) }));
  page.append(pageHead(t('audit.title')), card(null, filters, { class: 'filters-card' }), card(null, list));
  const detail = (d) => (d == null || d === '' ? dash() : h('span', { class: 'clip mono small', title: typeof d === 'string' ? d : JSON.stringify(d) }, typeof d === 'string' ? d : JSON.stringify(d)));
  await fill(list, () => api('GET', `/audit${qs({ ...q, limit: AUDIT_PAGE, offset })}`), (res) => {
    const entries = res.entries || [];
    return [
      table([
        { label: t('common.time'), cell: (e) => h('span', { class: 'nowrap' }, timeEl(e.at, false)) },
        { label: t('audit.actor'), cell: (e) => orDash(e.actor) },
        { label: t('audit.action'), cell: (e) => h('code', null, e.action || '') },
        { label: t('audit.target'), cell: (e) => orDash(e.target) },
        { label: t('audit.ip'), cell: (e) => h('span', { class: 'mono small' }, e.ip || t('common.none')) },
        { label: t('common.status'), cell: (e) => (typeof e.status === 'number' || /^\d+$/.test(String(e.status)) ? httpStatusBadge(e.status) : badge(e.status)) },
        { label: t('audit.detail'), cell: (e) => detail(e.detail) },
      ], entries, { pageSize: AUDIT_PAGE, rowAttrs: () => ({ 'data-testid': 'audit-row' }) }),
      pagerEl({
        from: offset + 1, to: offset + entries.length, total: res.total,
        hasPrev: offset > 0, hasNext: offset + entries.length < (res.total ?? 0),
        onPrev: () => setQuery({ ...q, offset: Math.max(0, offset - AUDIT_PAGE) || undefined }),
        onNext: () => setQuery({ ...q, offset: offset + AUDIT_PAGE }),
      }),
    ];
  });
}
