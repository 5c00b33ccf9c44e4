#!/usr/bin/env node
// The example's API server: static files, writes as SQL against Postgres (each answer carries the
// transaction id, so the client can wait until the change comes back through its shape), and the
// shape proxy in front of Ampere, which decides what a client may read (table, `where`, columns)
// and adds the secret, so neither ever reaches the browser.
//
// Environment:
//   DATABASE_URL     Postgres to write to (the one Ampere replicates from)       required
//   AMPERE_URL       Ampere's base URL                                         http://127.0.0.1:3000
//   ELECTRIC_SECRET  Ampere's secret (unset: Ampere must run with ELECTRIC_INSECURE=true)
//   PORT             port to listen on                                         8080
//   HOST             address to listen on                                      127.0.0.1
//   SESSION_KEY      key that signs session tokens                             random per start
//   SEED             `0`: do not add the demo rows to an empty table

import http from 'node:http';
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { extname, join, normalize } from 'node:path';
import pg from 'pg';

const HERE = import.meta.dirname;
const DATABASE_URL = process.env.DATABASE_URL;
if (!DATABASE_URL) {
  console.error('server: DATABASE_URL is not set (the Postgres that Ampere replicates from)');
  process.exit(2);
}
const AMPERE_URL = new URL(process.env.AMPERE_URL ?? 'http://127.0.0.1:3000');
const SECRET = process.env.ELECTRIC_SECRET || null;
const PORT = Number(process.env.PORT ?? 8080);
const HOST = process.env.HOST ?? '127.0.0.1';
const SESSION_KEY = process.env.SESSION_KEY ?? randomBytes(32).toString('hex');

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 });
pool.on('error', (e) => console.error(`server: idle database connection failed: ${e.message}`));

// ---- schema -------------------------------------------------------------------------------

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS todos (
    id uuid PRIMARY KEY,
    list text NOT NULL,
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    done boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX IF NOT EXISTS todos_list ON todos (list);
`;

async function migrate() {
  // Another instance may be migrating at the same moment: serialise on an advisory lock.
  const c = await pool.connect();
  try {
    await c.query('SELECT pg_advisory_lock(4151)');
    await c.query(SCHEMA);
    if (process.env.SEED !== '0') {
      const { rows } = await c.query('SELECT count(*)::int AS n FROM todos');
      if (rows[0].n === 0) {
        await c.query(`INSERT INTO todos (id, list, title, done, created_at) VALUES
          ($1, 'demo', 'Open this page in a second window', true, now() - interval '3 s'),
          ($2, 'demo', 'Add an item and watch it appear in both', false, now() - interval '2 s'),
          ($3, 'demo', 'Insert one with psql too', false, now() - interval '1 s')`,
        [randomUUID(), randomUUID(), randomUUID()]);
      }
    }
  } finally {
    await c.query('SELECT pg_advisory_unlock(4151)').catch(() => {});
    c.release();
  }
}

// ---- sessions -----------------------------------------------------------------------------
// A token names one list and is signed by this server; the list it names is the only one its
// holder can read or write. (A real application would issue it at login from its own users.)

const LIST_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;

function sign(list) {
  return createHmac('sha256', SESSION_KEY).update(list).digest('base64url');
}

function issueToken(list) {
  return `${list}.${sign(list)}`;
}

// The list the request's `Authorization: Bearer` token grants, or null.
function listOf(req) {
  const m = /^Bearer ([a-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
  if (!m || !LIST_NAME.test(m[1])) return null;
  const want = Buffer.from(sign(m[1]));
  const got = Buffer.from(m[2]);
  return want.length === got.length && timingSafeEqual(want, got) ? m[1] : null;
}

// ---- writes -------------------------------------------------------------------------------

// Runs `fn` in a transaction and returns its result with the transaction's id, read inside the
// same transaction: the id Electric puts in the `txids` header of the changes it made.
async function inTransaction(fn) {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const result = await fn(c);
    const { rows } = await c.query('SELECT pg_current_xact_id()::xid::text AS txid');
    await c.query('COMMIT');
    return { ...result, txid: Number(rows[0].txid) };
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkTitle(title) {
  if (typeof title !== 'string' || title.trim().length === 0 || title.length > 200) {
    throw new HttpError(400, 'title must be a non-empty string of at most 200 characters');
  }
  return title.trim();
}

async function createTodo(list, body) {
  const id = body.id ?? randomUUID();
  if (typeof id !== 'string' || !UUID.test(id)) throw new HttpError(400, 'id must be a UUID');
  const title = checkTitle(body.title);
  return inTransaction(async (c) => {
    const { rows } = await c.query(
      `INSERT INTO todos (id, list, title, done) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      [id, list, title, body.done === true],
    );
    if (rows.length === 0) throw new HttpError(409, `todo ${id} already exists`);
    return { id };
  });
}

async function updateTodo(list, id, body) {
  const sets = [];
  const args = [id, list];
  if ('title' in body) {
    args.push(checkTitle(body.title));
    sets.push(`title = $${args.length}`);
  }
  if ('done' in body) {
    if (typeof body.done !== 'boolean') throw new HttpError(400, 'done must be a boolean');
    args.push(body.done);
    sets.push(`done = $${args.length}`);
  }
  if (sets.length === 0) throw new HttpError(400, 'nothing to update (title, done)');
  return inTransaction(async (c) => {
    const { rowCount } = await c.query(
      `UPDATE todos SET ${sets.join(', ')} WHERE id = $1 AND list = $2`, args,
    );
    if (rowCount === 0) throw new HttpError(404, `no todo ${id} in this list`);
    return { id };
  });
}

async function deleteTodo(list, id) {
  return inTransaction(async (c) => {
    const { rowCount } = await c.query('DELETE FROM todos WHERE id = $1 AND list = $2', [id, list]);
    if (rowCount === 0) throw new HttpError(404, `no todo ${id} in this list`);
    return { id };
  });
}

// ---- the shape proxy ----------------------------------------------------------------------

// The Shape API parameters a client drives (where it is in the log, live mode, subset
// snapshots). Everything else — table, where, params, columns, replica, secret — is decided
// here; a client's own values for them are dropped.
const CLIENT_PARAMS = new Set([
  'offset', 'handle', 'live', 'live_sse', 'experimental_live_sse', 'cursor', 'expired_handle',
  'log', 'cache-buster', 'subset__where', 'subset__params', 'subset__limit', 'subset__offset',
  'subset__order_by', 'subset__where_expr', 'subset__order_by_expr',
]);

// Headers about one connection, not the message: each side of the proxy has its own.
const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer'];

function proxyShape(req, res, list) {
  const incoming = new URL(req.url, 'http://x');
  const target = new URL('/v1/shape', AMPERE_URL);
  for (const [k, v] of incoming.searchParams) {
    if (CLIENT_PARAMS.has(k) || /^subset__params\[\d+\]$/.test(k)) target.searchParams.append(k, v);
  }
  target.searchParams.set('table', 'todos');
  target.searchParams.set('where', 'list = $1');
  target.searchParams.set('params[1]', list);
  if (SECRET) target.searchParams.set('secret', SECRET);

  const headers = { ...req.headers, host: AMPERE_URL.host };
  for (const h of ['authorization', 'cookie', ...HOP_BY_HOP]) delete headers[h];
  const upstream = http.request(target, { method: req.method, headers }, (up) => {
    const out = { ...up.headers };
    for (const h of HOP_BY_HOP) delete out[h];
    // The answer depends on the token, so a browser or CDN must not share it across tokens.
    out.vary = out.vary ? `${out.vary}, Authorization` : 'Authorization';
    res.writeHead(up.statusCode, out);
    // pipeline, not pipe: a response cut short upstream (Ampere stopped in the middle of a
    // server-sent events stream) must cut the browser's response too, or the client would wait
    // on a connection that will never say anything again instead of reconnecting.
    pipeline(up, res, () => {});
  });
  upstream.on('error', (e) => {
    // Ampere down or restarting: a 502 makes the client back off and retry.
    if (!res.headersSent) {
      sendJson(res, 502, { message: `shape server unreachable: ${e.code ?? e.message}` });
    } else {
      res.destroy();
    }
  });
  // A live request the browser gives up on (page closed, stream aborted) ends upstream too.
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}

// ---- HTTP ---------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new HttpError(413, 'request body over 64 KiB');
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error();
    return body;
  } catch {
    throw new HttpError(400, 'request body must be a JSON object');
  }
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

async function serveStatic(res, pathname) {
  const rel = pathname === '/' ? 'index.html' : normalize(pathname).replace(/^[/\\]+/, '');
  if (rel.startsWith('..')) throw new HttpError(404, 'not found');
  for (const dir of ['public', 'dist']) {
    try {
      const data = await readFile(join(HERE, dir, rel));
      res.writeHead(200, {
        'content-type': TYPES[extname(rel)] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
      });
      res.end(data);
      return;
    } catch (e) {
      if (e.code !== 'ENOENT' && e.code !== 'EISDIR') throw e;
    }
  }
  if (rel === 'app.js') {
    throw new HttpError(404, 'dist/app.js is missing: run `npm run build` first');
  }
  throw new HttpError(404, 'not found');
}

async function route(req, res) {
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;

  if (path === '/api/health') return sendJson(res, 200, { status: 'ok' });

  if (path === '/api/session' && req.method === 'POST') {
    const { list } = await readJson(req);
    if (typeof list !== 'string' || !LIST_NAME.test(list)) {
      throw new HttpError(400, 'list must be 1-40 characters of a-z, 0-9, - and _, starting with a letter or digit');
    }
    return sendJson(res, 200, { list, token: issueToken(list) });
  }

  if (path.startsWith('/api/')) {
    const list = listOf(req);
    if (!list) throw new HttpError(401, 'missing or invalid session token (POST /api/session first)');

    if (path === '/api/shape/todos' && (req.method === 'GET' || req.method === 'HEAD')) {
      return proxyShape(req, res, list);
    }
    if (path === '/api/todos' && req.method === 'POST') {
      return sendJson(res, 201, await createTodo(list, await readJson(req)));
    }
    const m = /^\/api\/todos\/([^/]+)$/.exec(path);
    if (m && UUID.test(m[1])) {
      if (req.method === 'PATCH') return sendJson(res, 200, await updateTodo(list, m[1], await readJson(req)));
      if (req.method === 'DELETE') return sendJson(res, 200, await deleteTodo(list, m[1]));
    }
    throw new HttpError(404, `no route ${req.method} ${path}`);
  }

  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed');
  return serveStatic(res, path);
}

const server = http.createServer((req, res) => {
  route(req, res).catch((e) => {
    const status = e instanceof HttpError ? e.status : 500;
    if (status === 500) console.error(`server: ${req.method} ${req.url}: ${e.stack ?? e}`);
    if (res.headersSent) return res.destroy();
    sendJson(res, status, { message: status === 500 ? `internal error: ${e.message}` : e.message });
  });
});
// Live requests are held by Ampere for up to its long-poll timeout (20 s by default).
server.requestTimeout = 0;
server.keepAliveTimeout = 65_000;

async function main() {
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate();
      break;
    } catch (e) {
      if (attempt >= 30) throw e;
      console.error(`server: database not ready (${e.message}); retrying`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  server.listen(PORT, HOST, () => {
    const shown = HOST === '0.0.0.0' || HOST === '127.0.0.1' ? 'localhost' : HOST;
    console.log(`server: listening on http://${shown}:${PORT} (shapes from ${AMPERE_URL.origin}${SECRET ? ', with the secret' : ', insecure mode'})`);
  });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    pool.end().finally(() => process.exit(0));
  });
}

main().catch((e) => {
  console.error(`server: ${e.message}`);
  process.exit(1);
});
