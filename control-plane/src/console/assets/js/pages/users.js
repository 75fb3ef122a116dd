// Users (admin).

import { state } from '../state.js';
import { t } from '../i18n.js';
import { enc, h, timeEl } from '../dom.js';
import { api, ROLES } from '../api.js';
import { actionButton, badge, card, fill, pageHead, promptDialog, reportError, table, toast } from '../ui.js';
import { field, form, input, select } from '../forms.js';
import { split } from './shared.js';

export function roleSelect(name, value, attrs = {}) {
  return select(name, ROLES.map((r) => [r, t(`role.${r}`)]), { value, ...attrs });
}

export async function pageUsers(ctx, page) {
  const list = h('div');
  const me = state.session.user;
  const patch = async (u, body) => {
    await api('PATCH', `/users/${enc(u.id)}`, body);
    toast(t('users.saved', { name: u.username }));
    load();
  };
  const load = () => fill(list, () => api('GET', '/users'), (users) => table([
    { label: t('users.username'), cell: (u) => h('span', null, h('strong', null, u.username), u.id === me.id ? h('span', { class: 'muted small' }, ` (${t('users.you')})`) : null) },
    {
      label: t('common.role'),
      cell: (u) => {
        const s = roleSelect('role', u.role, { class: 'input input-small', 'data-testid': `user-role-${u.username}`, 'aria-label': t('common.role') });
        s.addEventListener('change', () => patch(u, { role: s.value }).catch((err) => { s.value = u.role; reportError(err); }));
        return s;
      },
    },
    { label: t('common.status'), cell: (u) => badge(u.disabled ? 'disabled' : 'active') },
    { label: t('common.created'), cell: (u) => timeEl(u.created_at) },
    { label: t('users.lastLogin'), cell: (u) => timeEl(u.last_login_at) },
    {
      label: '', class: 'row-actions',
      cell: (u) => [
        actionButton(t('users.setPassword'), async () => {
          const pw = await promptDialog({ title: t('users.newPassword', { name: u.username }), label: t('users.password'), type: 'password', name: 'password' });
          if (pw) await patch(u, { password: pw });
        }, { class: 'btn btn-small', 'data-testid': `user-password-${u.username}` }),
        actionButton(u.disabled ? t('users.enable') : t('users.disable'), () => patch(u, { disabled: !u.disabled }),
          { class: u.disabled ? 'btn btn-small' : 'btn btn-small btn-danger-ghost', 'data-testid': `user-toggle-${u.username}` }),
      ],
    },
  ], users, { rowAttrs: (u) => ({ 'data-testid': `user-row-${u.username}` }) }));
  const create = form({ 'data-testid': 'user-form' }, [
    field(t('users.username'), input('username', { required: true, autocomplete: 'off', spellcheck: 'false' }), { required: true }),
    field(t('users.password'), input('password', { type: 'password', required: true, autocomplete: 'new-password' }), { required: true }),
    field(t('common.role'), roleSelect('role', 'viewer'), { required: true }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'user-submit' }, t('common.create'))),
  ], async (v, el) => {
    const u = await api('POST', '/users', { username: v.username, password: el.elements.password.value, role: v.role });
    el.reset();
    toast(t('users.created', { name: u.username }));
    load();
  });
  page.append(pageHead(t('nav.users')), split(card(t('users.list'), list), card(t('users.create'), create)));
  await load();
}
