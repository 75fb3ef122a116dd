// API tokens (admin).

import { t } from '../i18n.js';
import { enc, h, parseTime, put, timeEl } from '../dom.js';
import { api } from '../api.js';
import { actionButton, badge, card, confirmDialog, fill, pageHead, secretPanel, table, toast } from '../ui.js';
import { field, form, input } from '../forms.js';
import { split } from './shared.js';
import { roleSelect } from './users.js';

function tokenState(x) {
  if (x.revoked_at) return 'revoked';
  const exp = parseTime(x.expires_at);
  return exp && exp.getTime() < Date.now() ? 'expired' : 'active';
}

export async function pageTokens(ctx, page) {
  const list = h('div');
  const secretSlot = h('div');
  const load = () => fill(list, () => api('GET', '/api-tokens'), (tokens) => table([
    { label: t('common.name'), cell: (x) => h('strong', null, x.name) },
    { label: t('common.role'), cell: (x) => t(`role.${x.role}`) },
    { label: t('common.status'), cell: (x) => badge(tokenState(x)) },
    { label: t('common.created'), cell: (x) => timeEl(x.created_at) },
    { label: t('tokens.expires'), cell: (x) => timeEl(x.expires_at) },
    { label: t('tokens.lastUsed'), cell: (x) => timeEl(x.last_used_at) },
    {
      label: '', class: 'row-actions',
      cell: (x) => (x.revoked_at ? null : actionButton(t('tokens.revoke'), async () => {
        if (!(await confirmDialog({ title: t('tokens.revokeTitle', { name: x.name }), body: h('p', null, t('tokens.revokeBody')), ok: t('tokens.revoke'), danger: true }))) return;
        await api('DELETE', `/api-tokens/${enc(x.id)}`);
        toast(t('tokens.revoked', { name: x.name }));
        load();
      }, { class: 'btn btn-small btn-danger-ghost', 'data-testid': `token-revoke-${x.name}` })),
    },
  ], tokens, { rowAttrs: (x) => ({ 'data-testid': `token-row-${x.name}` }) }));
  const create = form({ 'data-testid': 'token-form' }, [
    field(t('common.name'), input('name', { required: true, spellcheck: 'false', placeholder: 'ci-deployer' }), { required: true }),
    field(t('common.role'), roleSelect('role', 'viewer'), { required: true }),
    field(t('tokens.ttl'), input('ttl_days', { type: 'number', min: 1 }), { optional: true, hint: t('tokens.ttlHint') }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'token-submit' }, t('common.create'))),
  ], async (v, el) => {
    const body = { name: v.name, role: v.role };
    if (v.ttl_days !== '') body.ttl_days = Number(v.ttl_days);
    const created = await api('POST', '/api-tokens', body);
    el.reset();
    put(secretSlot, secretPanel(t('tokens.newToken', { name: created.name }), created.token, 'new-token'));
    load();
  });
  page.append(pageHead(t('nav.tokens')), secretSlot, split(card(t('tokens.list'), list), card(t('tokens.create'), create)));
  await load();
}
