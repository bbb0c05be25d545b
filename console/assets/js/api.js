// The HTTP API: login, token refresh, JSON calls with problem+json errors.
// Tokens live in sessionStorage (this tab only), never in the URL.

const KEY = 'callcenter.session';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    return null;
  }
}

function save(pair) {
  sessionStorage.setItem(KEY, JSON.stringify({
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    user: pair.user,
  }));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = { title: 'Unexpected answer', detail: text.slice(0, 200) }; }
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function login(username, password) {
  const pair = await parse(await fetch('/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  }));
  save(pair);
  return pair.user;
}

let refreshing = null;
/** Trade the refresh token for a new pair (once, however many callers ask). */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const current = session();
      if (!current) throw new ApiError(401, { title: 'Not logged in', detail: 'log in again' });
      try {
        const pair = await parse(await fetch('/api/auth/refresh', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ refresh_token: current.refresh_token }),
        }));
        save(pair);
        return pair;
      } catch (e) {
        if (e.status === 401 || e.status === 403) forget();
        throw e;
      }
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** Call the API; a 401 is retried once with refreshed tokens. */
export async function api(method, path, body, headers = {}) {
  for (let attempt = 0; ; attempt++) {
    const s = session();
    const response = await fetch(path, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(s ? { authorization: `Bearer ${s.access_token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt === 0 && s) {
      await refresh();
      continue;
    }
    return parse(response);
  }
}

export async function logout() {
  try { await api('POST', '/api/auth/logout'); } catch { /* the session ends here anyway */ }
  forget();
}
