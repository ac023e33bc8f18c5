// A real, local OpenID Provider for django_sso's end-to-end tests, browser
// tests, benchmarks and demo: a thin wrapper around the certified npm package
// `oidc-provider` (v9). Test-only: it serves control endpoints under /__test__/
// and accepts any password for a known account. Never expose it beyond
// 127.0.0.1. See README.md beside this file for the configuration format.
//
//   node server.mjs CONFIG.json        (or OP_CONFIG=CONFIG.json node server.mjs)
//
// When listening it prints exactly one line on stdout:
//   OP READY http://127.0.0.1:<port>
// Everything else (oidc-provider notices, errors, OP_DEBUG=1 request log) goes
// to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors as oidcErrors } from 'oidc-provider';

const HOST = '127.0.0.1';
const DEBUG = process.env.OP_DEBUG === '1';
const BODY_LIMIT = 1024 * 1024;

// Keep stdout for the READY line only: oidc-provider prints notices with
// console.info, which would otherwise land there.
console.info = console.error;
console.log = console.error;

const log = (...args) => console.error('[op]', ...args);

// ---------------------------------------------------------------- config ---

const CONFIG_KEYS = new Set(['port', 'issuer', 'clients', 'accounts', 'scopes', 'resource', 'claims']);
const BASE_SCOPES = ['openid', 'offline_access'];
const BASE_CLAIMS = {
  acr: null,
  auth_time: null,
  iss: null,
  sid: null,
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username', 'given_name', 'family_name'],
  groups: ['groups'],
  roles: ['roles'],
};
const TTL = {
  AccessToken: 600,
  AuthorizationCode: 60,
  ClientCredentials: 600,
  IdToken: 600,
  RefreshToken: 24 * 60 * 60,
  Interaction: 600,
  Session: 24 * 60 * 60,
  Grant: 24 * 60 * 60,
  DeviceCode: 600,
  BackchannelAuthenticationRequest: 600,
  PreAuthorizedCode: 600,
};

function fail(message) {
  console.error(`[op] configuration error: ${message}`);
  process.exit(2);
}

function loadConfig() {
  const path = process.argv[2] || process.env.OP_CONFIG;
  let raw = {};
  if (path) {
    try {
      raw = JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (err) {
      fail(`cannot read ${path}: ${err.message}`);
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('top level must be an object');
  for (const key of Object.keys(raw)) {
    if (!CONFIG_KEYS.has(key)) fail(`unknown key ${JSON.stringify(key)} (known: ${[...CONFIG_KEYS].join(', ')})`);
  }
  const port = raw.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('port must be an integer 0..65535');
  if (raw.clients !== undefined && !Array.isArray(raw.clients)) fail('clients must be a list');
  if (raw.accounts !== undefined && (typeof raw.accounts !== 'object' || Array.isArray(raw.accounts))) {
    fail('accounts must be an object keyed by login');
  }
  if (raw.scopes !== undefined && !Array.isArray(raw.scopes)) fail('scopes must be a list');
  if (raw.resource != null && typeof raw.resource !== 'string') fail('resource must be a string');
  return {
    port,
    issuer: raw.issuer ?? null,
    clients: (raw.clients ?? []).map(normalizeClient),
    accounts: new Map(Object.entries(raw.accounts ?? {})),
    extraScopes: raw.scopes ?? [],
    resource: raw.resource ?? null,
    claims: { ...BASE_CLAIMS, ...(raw.claims ?? {}) },
  };
}

/** Client metadata as given, minus null values; a client without the
 * authorization_code grant gets no response types (oidc-provider insists). */
function normalizeClient(input) {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError('a client must be a JSON object');
  }
  const client = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null));
  if (typeof client.client_id !== 'string' || !client.client_id) {
    throw new TypeError('a client needs a client_id');
  }
  const grants = client.grant_types ?? ['authorization_code'];
  if (!grants.includes('authorization_code') && client.response_types === undefined) {
    client.response_types = [];
    client.redirect_uris ??= [];
  }
  return client;
}

const config = loadConfig();
if (DEBUG) log(`config loaded at ${Math.round(performance.now())} ms`);

// ------------------------------------------------------------- accounts ---

/** Accounts by login; the account id (and `sub`) is the `sub` claim, else the login. */
const accounts = config.accounts;

const accountSub = (login, claims) => String(claims.sub ?? login);

function findLogin(login) {
  if (typeof login !== 'string' || !login) return undefined;
  if (accounts.has(login)) return login;
  const lower = login.toLowerCase();
  for (const [key, claims] of accounts) {
    if (typeof claims.email === 'string' && claims.email.toLowerCase() === lower) return key;
  }
  return undefined;
}

function findAccountBySub(sub) {
  for (const [login, claims] of accounts) {
    if (accountSub(login, claims) === sub) return { login, claims };
  }
  return undefined;
}

async function findAccount(_ctx, id) {
  const found = findAccountBySub(id);
  if (!found) return undefined;
  return {
    accountId: id,
    // oidc-provider filters these by the granted scopes/claims.
    async claims() {
      const current = findAccountBySub(id)?.claims ?? found.claims;
      const { password: _password, ...claims } = current;
      return { ...claims, sub: id };
    },
  };
}

// ----------------------------------------------------------------- keys ---

function generateSigningKey() {
  // Take the key out as DER and export the JWK from a fresh KeyObject: on Node 20,
  // exporting a JWK straight from generateKeyPairSync's KeyObject can deadlock when
  // a GC during the export destroys the key generation job (it locks the same key).
  const { privateKey: der } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const jwk = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
  return { ...jwk, kid: `k-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

/** Signing keys, the first one signs new tokens; all are published. */
let signingKeys = [generateSigningKey()];
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
if (DEBUG) log(`signing key ready at ${Math.round(performance.now())} ms`);

// -------------------------------------------------------------- adapter ---

/** In-memory storage shared by every Provider instance this process builds
 * (the provider is rebuilt when keys rotate), unbounded but swept of expired
 * entries, unlike oidc-provider's per-instance 1000-entry LRU. */
const store = new Map(); // "Model:id" -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set("Model:id")
const sessionUids = new Map(); // session uid -> session id
const userCodes = new Map(); // user code -> device code id

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

setInterval(() => {
  const now = Date.now();
  for (const [key, { expiresAt }] of store) if (expiresAt <= now) store.delete(key);
  for (const [uid, id] of sessionUids) if (!store.has(`Session:${id}`)) sessionUids.delete(uid);
  for (const [code, id] of userCodes) if (!store.has(`DeviceCode:${id}`)) userCodes.delete(code);
  for (const [grantId, keys] of grantMembers) {
    for (const key of keys) if (!store.has(key)) keys.delete(key);
    if (!keys.size) grantMembers.delete(grantId);
  }
}, 60_000).unref();

// ----------------------------------------------------------------- html ---

const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = 'body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}'
  + 'label,input,button{display:block;margin:.4em 0}input{width:100%;padding:.3em}'
  + '.error{color:#b00020}code{word-break:break-all}';

function page(title, body) {
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>`
    + `<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>`
    + `<body><h1>${esc(title)}</h1>${body}</body></html>\n`;
}

function loginPage(uid, details, { login = '', error } = {}) {
  const action = `${prefix}/interaction/${encodeURIComponent(uid)}`;
  const { client_id: clientId, scope = '' } = details.params;
  return page('Sign in', `
<p>to <strong id="client">${esc(clientId)}</strong> (test OpenID Provider)</p>
<p>Requested scope: <code id="scope">${esc(scope)}</code></p>
${error ? `<p class="error" id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="${action}/login" id="login-form" autocomplete="off">
  <label for="login">Login</label>
  <input id="login" name="login" type="text" value="${esc(login)}" autofocus required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password">
  <button id="submit" type="submit">Sign in</button>
</form>
<form method="post" action="${action}/abort" id="abort-form">
  <button id="cancel" type="submit">Cancel</button>
</form>`);
}

async function logoutSource(ctx, form) {
  ctx.type = 'html';
  ctx.body = page('Sign out', `
<p>Do you want to sign out from the test OpenID Provider?</p>
${form}
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out', '<p id="signed-out">You are signed out of the test OpenID Provider.</p>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  const rows = Object.entries(out).map(([k, v]) => `<dt>${esc(k)}</dt><dd class="${esc(k)}">${esc(v)}</dd>`);
  ctx.body = page('OpenID Provider error', `<dl id="error">${rows.join('')}</dl>`);
}

// ------------------------------------------------------------- provider ---

const scopes = [...new Set([...BASE_SCOPES, ...config.extraScopes])];
const resourceScope = scopes.filter((s) => !BASE_SCOPES.includes(s)).join(' ');

let issuer; // set once the port is known
let prefix = ''; // issuer path, e.g. "/realms/test"; every route lives under it

function buildProvider() {
  const provider = new Provider(issuer, {
    adapter: TestAdapter,
    clients: config.clients,
    jwks: { keys: signingKeys },
    cookies: {
      keys: cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    claims: config.claims,
    scopes,
    conformIdTokenClaims: false,
    findAccount,
    clientBasedCORS: () => true,
    pkce: { required: () => false },
    issueRefreshToken: async (_ctx, client, source) => (
      client.grantTypeAllowed('refresh_token') && source.scopes.has('offline_access')
    ),
    rotateRefreshToken: true,
    ttl: TTL,
    interactions: { url: (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
    renderError,
    // oidc-provider >= 9.x refuses outgoing requests (back-channel logout,
    // jwks_uri, ...) to special-use addresses such as 127.0.0.1 by passing an
    // SSRF-protecting undici dispatcher; every RP of this test OP is on loopback.
    fetch: (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options),
    extraTokenClaims: async (_ctx, token) => {
      // JWT access tokens for the API carry the account's groups/roles.
      if (!token.resourceServer || !token.accountId) return undefined;
      const claims = findAccountBySub(token.accountId)?.claims ?? {};
      const extra = {};
      if (claims.groups !== undefined) extra.groups = claims.groups;
      if (claims.roles !== undefined) extra.roles = claims.roles;
      return extra;
    },
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      claimsParameter: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, _client, oneOf) => {
          if (oneOf) return oneOf;
          if (config.resource && ctx.oidc.params?.grant_type === 'client_credentials') return config.resource;
          return undefined;
        },
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (!config.resource || indicator !== config.resource) throw new oidcErrors.InvalidTarget();
          return {
            scope: resourceScope,
            audience: config.resource,
            accessTokenTTL: TTL.AccessToken,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  provider.proxy = false;
  provider.on('server_error', (_ctx, err) => log('server_error', err));
  provider.on('backchannel.error', (_ctx, err, client) => log(`backchannel logout to ${client.clientId} failed:`, err.message, err.cause ?? ''));
  if (DEBUG) {
    provider.on('backchannel.success', (_ctx, client, accountId) => log(`backchannel logout sent to ${client.clientId} for ${accountId}`));
  }
  return { provider, callback: provider.callback() };
}

let current; // { provider, callback }

// ---------------------------------------------------------- interactions ---

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const type = (req.headers['content-type'] || '').split(';')[0].trim();
  if (type === 'application/json') {
    try {
      return text ? JSON.parse(text) : {};
    } catch {
      throw Object.assign(new Error('invalid JSON body'), { status: 400 });
    }
  }
  return Object.fromEntries(new URLSearchParams(text));
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? type : 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(data),
  });
  res.end(data);
}

/** Grant everything the client asked for (auto consent) and resume. */
async function autoConsent(req, res, provider, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant;
  if (details.grantId) grant = await provider.Grant.find(details.grantId);
  grant ??= new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, uid, action) {
  const { provider } = current;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (err instanceof oidcErrors.SessionNotFound) {
      send(res, 400, page('Sign-in expired', '<p id="error">This sign-in request expired or was already used. Start again from the application.</p>'));
      return;
    }
    throw err;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in mismatch', '<p id="error">Interaction cookie does not match this URL.</p>'));
    return;
  }
  const { name } = details.prompt;

  if (req.method === 'GET' && !action) {
    if (name === 'login') {
      send(res, 200, loginPage(uid, details, { login: details.params.login_hint ?? '' }));
    } else if (name === 'consent') {
      await autoConsent(req, res, provider, details);
    } else {
      send(res, 400, page('Unsupported prompt', `<p id="error">Prompt ${esc(name)} is not supported.</p>`));
    }
    return;
  }

  if (req.method === 'POST' && action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'login') {
    const body = await readBody(req);
    if (name !== 'login') {
      res.writeHead(303, { Location: `${prefix}/interaction/${encodeURIComponent(uid)}`, 'Content-Length': 0 });
      res.end();
      return;
    }
    const login = findLogin(body.login);
    const claims = login === undefined ? undefined : accounts.get(login);
    const passwordOk = claims && (claims.password === undefined || claims.password === body.password);
    if (!passwordOk) {
      send(res, 200, loginPage(uid, details, { login: body.login ?? '', error: 'Unknown login or wrong password.' }));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: { accountId: accountSub(login, claims), amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
    return;
  }

  send(res, 405, page('Method not allowed', '<p id="error">Method not allowed.</p>'));
}

// ------------------------------------------------------ test control API ---

async function handleTest(req, res, path) {
  const accountMatch = path.match(/^\/__test__\/accounts\/([^/]+)$/);
  if (path === '/__test__/health' && req.method === 'GET') {
    send(res, 200, { status: 'ok', issuer, kids: signingKeys.map((k) => k.kid) });
  } else if (accountMatch) {
    const login = decodeURIComponent(accountMatch[1]);
    if (req.method === 'PUT') {
      const claims = await readBody(req);
      if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
        send(res, 400, { error: 'body must be a JSON object of claims' });
        return;
      }
      accounts.set(login, claims);
      send(res, 200, { login, claims });
    } else if (req.method === 'GET' && accounts.has(login)) {
      send(res, 200, { login, claims: accounts.get(login) });
    } else if (req.method === 'DELETE') {
      send(res, accounts.delete(login) ? 200 : 404, { login });
    } else {
      send(res, req.method === 'GET' ? 404 : 405, { error: 'not found' });
    }
  } else if (path === '/__test__/rotate-keys' && req.method === 'POST') {
    const body = await readBody(req);
    const key = generateSigningKey();
    signingKeys = body.drop_old ? [key] : [key, ...signingKeys];
    current = buildProvider();
    send(res, 200, { kid: key.kid, kids: signingKeys.map((k) => k.kid) });
  } else if (path === '/__test__/clients' && req.method === 'POST') {
    let metadata;
    try {
      metadata = normalizeClient(await readBody(req));
      if (config.clients.some((c) => c.client_id === metadata.client_id)) {
        send(res, 409, { error: 'a client with this client_id is configured statically' });
        return;
      }
      const client = new current.provider.Client(metadata);
      await current.provider.Client.adapter.upsert(client.clientId, client.metadata());
      send(res, 201, client.metadata());
    } catch (err) {
      if (err.status) throw err;
      send(res, 400, { error: 'invalid_client_metadata', error_description: err.error_description ?? err.message });
    }
  } else {
    send(res, 404, { error: 'not found' });
  }
}

// ---------------------------------------------------------------- server ---

/** oidc-provider ignores offline_access unless prompt contains consent (even
 * when no prompt is sent). Add consent to such GET authorization requests
 * (consent is granted automatically, so nothing is shown) so the refresh token
 * the client asked for is issued. prompt=none is left alone (no refresh token). */
function keepOfflineAccess(url) {
  const scope = url.searchParams.get('scope')?.split(' ') ?? [];
  const prompt = url.searchParams.get('prompt')?.split(' ').filter(Boolean) ?? [];
  if (!scope.includes('offline_access') || prompt.includes('consent') || prompt.includes('none')) {
    return false;
  }
  url.searchParams.set('prompt', [...prompt, 'consent'].join(' '));
  return true;
}

async function handle(req, res) {
  const started = Date.now();
  if (DEBUG) res.on('finish', () => log(`${req.method} ${req.url} -> ${res.statusCode} (${Date.now() - started} ms)`));
  try {
    const url = new URL(req.url, `http://${HOST}`);
    let path = url.pathname;
    if (prefix) {
      if (path !== prefix && !path.startsWith(`${prefix}/`)) {
        send(res, 404, page('Not found', `<p>Everything lives under ${esc(prefix)}/</p>`));
        return;
      }
      path = path.slice(prefix.length) || '/';
    }
    if (path.startsWith('/__test__/')) {
      await handleTest(req, res, path);
      return;
    }
    const interaction = path.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
    if (interaction) {
      await handleInteraction(req, res, decodeURIComponent(interaction[1]), interaction[2]);
      return;
    }
    if (req.method === 'GET' && path === '/auth' && keepOfflineAccess(url)) {
      req.url = `${url.pathname}${url.search}`;
    }
    if (prefix) {
      // oidc-provider derives its mount path from originalUrl vs url.
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
    }
    current.callback(req, res);
  } catch (err) {
    if (!err.status) log('error handling', req.method, req.url, err);
    if (!res.headersSent) send(res, err.status ?? 500, { error: err.status ? err.message : 'server_error' });
    else res.destroy();
  }
}

process.on('unhandledRejection', (err) => log('unhandled rejection', err));

const server = http.createServer((req, res) => { handle(req, res); });
server.keepAliveTimeout = 5_000;

function shutdown(signal) {
  if (DEBUG) log(`${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2_000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (process.env.OP_EXIT_ON_STDIN_EOF === '1') {
  // The Python harness holds our stdin; if it dies, so do we.
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

server.on('error', (err) => {
  console.error(`[op] cannot listen on ${HOST}:${config.port}: ${err.message}`);
  process.exit(1);
});

server.listen(config.port, HOST, () => {
  if (DEBUG) log(`listening at ${Math.round(performance.now())} ms`);
  const { port } = server.address();
  const base = `http://${HOST}:${port}`;
  issuer = (config.issuer ?? base).replaceAll('{port}', String(port)).replace(/\/+$/, '');
  prefix = new URL(issuer).pathname.replace(/\/+$/, '');
  try {
    current = buildProvider();
    // Static clients are validated lazily by oidc-provider; fail fast instead.
    for (const client of config.clients) new current.provider.Client(client);
  } catch (err) {
    console.error('[op] cannot configure oidc-provider:', err.error_description ?? err.message ?? err);
    process.exit(2);
  }
  log(`issuer ${issuer} ready in ${Math.round(performance.now())} ms (node ${process.version})`);
  process.stdout.write(`OP READY ${base}\n`);
});
