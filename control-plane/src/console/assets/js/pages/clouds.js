// Clouds: cloud accounts and their write-only credentials.

import { t } from '../i18n.js';
import { enc, h, put, timeEl } from '../dom.js';
import { api, can } from '../api.js';
import { alertBox, button, card, confirmDialog, dash, fill, pageHead, table, toast } from '../ui.js';
import { field, form, input, select } from '../forms.js';
import { split } from './shared.js';

const PROVIDERS = ['tencentcloud', 'aws', 'local', 'existing'];
const CREDENTIAL_FIELDS = {
  tencentcloud: [['secret_id', true], ['secret_key', true]],
  aws: [['access_key_id', true], ['secret_access_key', true], ['session_token', false]],
  local: [],
  existing: [],
};

export async function pageClouds(ctx, page) {
  const list = h('div');
  const notice = h('div');
  const load = () => fill(list, () => api('GET', '/clouds'), (clouds) => table([
    { label: t('common.name'), cell: (c) => h('strong', null, c.name) },
    { label: t('clouds.provider'), cell: (c) => t(`provider.${c.provider}`) },
    { label: t('clouds.credentials'), cell: (c) => (c.credential_fields && c.credential_fields.length ? h('span', { class: 'chips' }, c.credential_fields.map((f) => h('code', { class: 'chip' }, f))) : dash()) },
    { label: t('clouds.regionCount'), cell: (c) => String(c.region_count ?? 0), class: 'num' },
    { label: t('common.created'), cell: (c) => timeEl(c.created_at) },
    can('admin') && { label: '', class: 'row-actions', cell: (c) => h('span', null,
      button(t('clouds.edit'), () => editCloud(c), { class: 'btn btn-small', 'data-testid': `cloud-edit-${c.name}` }),
      button(t('common.delete'), () => deleteCloud(c), { class: 'btn btn-small btn-danger-ghost', 'data-testid': `cloud-delete-${c.name}` })) },
  ].filter(Boolean), clouds, { rowAttrs: (c) => ({ 'data-testid': `cloud-row-${c.name}` }) }));

  const deleteCloud = async (c) => {
    const ok = await confirmDialog({ title: t('clouds.deleteTitle', { name: c.name }), body: h('p', null, t('clouds.deleteBody')), ok: t('common.delete'), danger: true });
    if (!ok) return;
    put(notice);
    try {
      await api('DELETE', `/clouds/${enc(c.id)}`);
      toast(t('clouds.deleted', { name: c.name }));
      load();
    } catch (err) {
      if (err.status !== 401) put(notice, alertBox('error', err.message));
    }
  };

  const aside = h('div');
  const showRegister = () => put(aside, card(t('clouds.register'), cloudForm(load)));
  const editCloud = (c) => put(aside, card(t('clouds.editTitle', { name: c.name }), cloudEditForm(c, () => { showRegister(); load(); }, showRegister)));
  if (can('admin')) showRegister();
  page.append(pageHead(t('nav.clouds')), notice, split(card(t('clouds.list'), list), can('admin') ? aside : null));
  await load();
}

/** Rename a cloud account or rotate its credentials (all of them at once; empty keeps the current ones). */
function cloudEditForm(c, onSaved, onCancel) {
  const fields = CREDENTIAL_FIELDS[c.provider] || [];
  return form({ 'data-testid': 'cloud-edit-form' }, [
    field(t('common.name'), input('name', { required: true, value: c.name, spellcheck: 'false' }), { required: true }),
    fields.length
      ? h('div', { class: 'cred-fields' }, fields.map(([name]) => field(t(`cred.${name}`),
        input(name, { type: 'password', autocomplete: 'new-password', spellcheck: 'false', 'data-credential': 'true' }), { optional: true })))
      : null,
    fields.length ? h('p', { class: 'hint' }, t('clouds.rotateHint')) : null,
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'cloud-edit-submit' }, t('common.save')),
      button(t('common.cancel'), onCancel, { class: 'btn' })),
  ].filter(Boolean), async (values, el) => {
    const body = {};
    if (values.name !== c.name) body.name = values.name;
    const credentials = {};
    for (const inp of el.querySelectorAll('[data-credential]')) if (inp.value) credentials[inp.name] = inp.value;
    if (Object.keys(credentials).length) body.credentials = credentials;
    if (!Object.keys(body).length) { onCancel(); return; }
    const saved = await api('PATCH', `/clouds/${enc(c.id)}`, body);
    toast(t('clouds.updated', { name: saved.name }));
    onSaved();
  });
}

function cloudForm(onCreated) {
  const provider = select('provider', PROVIDERS.map((p) => [p, t(`provider.${p}`)]), { 'data-testid': 'cloud-provider' });
  const creds = h('div', { class: 'cred-fields' });
  const drawCreds = () => {
    const fields = CREDENTIAL_FIELDS[provider.value] || [];
    put(creds, fields.length
      ? fields.map(([name, required]) => field(t(`cred.${name}`),
        input(name, { type: 'password', autocomplete: 'new-password', spellcheck: 'false', 'data-credential': 'true' }),
        { required, optional: !required }))
      : h('p', { class: 'muted small' }, t('clouds.noCreds')));
  };
  provider.addEventListener('change', drawCreds);
  drawCreds();
  const f = form({ 'data-testid': 'cloud-form' }, [
    field(t('common.name'), input('name', { required: true, placeholder: 'lab-shanghai', spellcheck: 'false' }), { required: true }),
    field(t('clouds.provider'), provider, { required: true }),
    creds,
    h('p', { class: 'hint' }, t('clouds.credHint')),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'cloud-submit' }, t('common.create'))),
  ], async (values, el) => {
    const credentials = {};
    for (const inp of el.querySelectorAll('[data-credential]')) if (inp.value) credentials[inp.name] = inp.value;
    const body = { name: values.name, provider: values.provider };
    if (Object.keys(credentials).length) body.credentials = credentials;
    const created = await api('POST', '/clouds', body);
    el.reset();
    drawCreds();
    toast(t('clouds.created', { name: created.name }));
    onCreated();
  });
  return f;
}
