// State shared by the modules: one mutable object, since imported bindings are read-only.
export const state = { session: null, csrf: null, returnHash: null, ctx: null, els: null, expiryTimer: null, lang: null };
