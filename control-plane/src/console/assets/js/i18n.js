// i18n: the message tables per language, t(), and the language in use (state.lang).

import { state } from './state.js';
import { TEXT } from './i18n/text.js';

export const MESSAGES = { en: {}, zh: {} };
for (const [key, [en, zh]] of Object.entries(TEXT)) {
  MESSAGES.en[key] = en;
  MESSAGES.zh[key] = zh;
}

export const LANG_KEY = 'edgefleet.console.lang';
state.lang = initialLang();

function initialLang() {
  let saved = null;
  try { saved = localStorage.getItem(LANG_KEY); } catch (_) { /* storage disabled */ }
  if (saved === 'en' || saved === 'zh') return saved;
  return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export function t(key, vars) {
  let s = MESSAGES[state.lang][key] ?? MESSAGES.en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** A status/state value shown translated; unknown values are shown as they are. */
export function tStatus(value) {
  if (value == null || value === '') return t('common.none');
  const key = 'status.' + value;
  return key in MESSAGES.en ? t(key) : String(value);
}

export function applyDocumentLang() {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
}

export function locale() {
  if (state.lang === 'zh') return 'zh-CN';
  const nav = navigator.language || 'en-US';
  return nav.toLowerCase().startsWith('zh') ? 'en-US' : nav;
}
