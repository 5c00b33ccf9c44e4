// The list as a shape, read with @electric-sql/react's useShape. Writes go to the API server;
// each stays marked "saving" until its transaction id comes back through the shape.

import { useEffect, useState } from 'react';
import { useShape } from '@electric-sql/react';
import { api, byCreation, LIST, shapeOptions, uuid } from './api.js';
import { txidTracker } from './txids.js';

export function ShapeView() {
  const { data, stream, isLoading, lastSyncedAt, error } = useShape(shapeOptions);
  // Start watching transaction ids as soon as the stream exists, before any write is sent.
  useEffect(() => void txidTracker(stream), [stream]);
  const [title, setTitle] = useState('');
  const [adding, setAdding] = useState([]); // rows written, not yet synced
  const [busy, setBusy] = useState(new Set()); // ids with a write in flight
  const [failure, setFailure] = useState(null);

  async function write(id, call) {
    setBusy((s) => new Set(s).add(id));
    try {
      const { txid } = await call();
      await txidTracker(stream).wait(txid);
      setFailure(null);
    } catch (e) {
      setFailure(e.message);
    } finally {
      setBusy((s) => {
        const next = new Set(s);
        next.delete(id);
        return next;
      });
    }
  }

  async function add(event) {
    event.preventDefault();
    const text = title.trim();
    if (!text) return;
    setTitle('');
    const row = { id: uuid(), list: LIST, title: text, done: false, created_at: '~' };
    setAdding((rows) => [...rows, row]);
    await write(row.id, () => api.create({ id: row.id, title: text }));
    setAdding((rows) => rows.filter((r) => r.id !== row.id));
  }

  const synced = new Set(data.map((r) => r.id));
  const rows = [...data].sort(byCreation).concat(adding.filter((r) => !synced.has(r.id)));
  const open = data.filter((r) => !r.done).length;

  return (
    <section className="panel" data-testid="shape-view">
      <h2>All items <span className="via">useShape · @electric-sql/react</span></h2>
      <form onSubmit={add}>
        <input
          data-testid="shape-input" value={title} maxLength={200}
          placeholder="What needs doing?" onChange={(e) => setTitle(e.target.value)}
        />
        <button data-testid="shape-add" type="submit">Add</button>
      </form>
      {failure && <p className="error" role="alert">{failure}</p>}
      {error && <p className="error" role="alert">Sync error: {error.message}</p>}
      {isLoading ? <p className="muted">Loading…</p> : (
        <ul data-testid="shape-list">
          {rows.map((todo) => {
            const saving = busy.has(todo.id);
            return (
              <li
                key={todo.id} data-title={todo.title} data-done={String(todo.done)}
                data-synced={String(synced.has(todo.id))} data-saving={String(saving)}
                className={`${todo.done ? 'done' : ''} ${saving ? 'saving' : ''}`}
              >
                <label>
                  <input
                    type="checkbox" checked={todo.done} disabled={saving || !synced.has(todo.id)}
                    onChange={() => write(todo.id, () => api.update(todo.id, { done: !todo.done }))}
                  />
                  <span>{todo.title}</span>
                </label>
                {saving && <em className="muted">saving…</em>}
                <button
                  className="delete" aria-label={`Delete ${todo.title}`} title="Delete"
                  disabled={saving || !synced.has(todo.id)}
                  onClick={() => write(todo.id, () => api.remove(todo.id))}
                >×</button>
              </li>
            );
          })}
        </ul>
      )}
      <p className="muted footer">
        {open} open of {data.length}
        {lastSyncedAt ? ` · synced ${new Date(lastSyncedAt).toLocaleTimeString()}` : ''}
      </p>
    </section>
  );
}
