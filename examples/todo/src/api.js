// The session (a token for one list, from the API server) and the write calls. Every write
// answers with the id of the Postgres transaction that made it.

const params = new URLSearchParams(location.search);
export const LIST = (params.get('list') ?? 'demo').toLowerCase();
// `?live=sse`: follow changes over server-sent events instead of long polls.
export const LIVE_SSE = params.get('live') === 'sse';

async function request(method, path, body, token) {
  const res = await fetch(path, {
    method,
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    // A proxy's HTML error page: fall through to the status.
  }
  if (!res.ok) throw new Error(json.message ?? `${method} ${path}: HTTP ${res.status}`);
  return json;
}

const session = await request('POST', '/api/session', { list: LIST });
export const TOKEN = session.token;

export const api = {
  create: (todo) => request('POST', '/api/todos', todo, TOKEN),
  update: (id, changes) => request('PATCH', `/api/todos/${id}`, changes, TOKEN),
  remove: (id) => request('DELETE', `/api/todos/${id}`, undefined, TOKEN),
};

// What both views pass to the Electric client: the proxy's URL (it fixes table and where), the
// token, and a short backoff so a restarted server is picked up within seconds.
export const shapeOptions = {
  url: new URL('/api/shape/todos', location.origin).href,
  headers: { authorization: `Bearer ${TOKEN}` },
  backoffOptions: { initialDelay: 200, maxDelay: 3000, multiplier: 2 },
  liveSse: LIVE_SSE,
};

export function byCreation(a, b) {
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1;
}

// crypto.randomUUID exists only in secure contexts (https, localhost); a page opened over plain
// http from another machine still needs ids.
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
