// The open items through TanStack DB: a live query over the Electric collection, with
// optimistic mutations (applied at once, confirmed when their transaction id syncs back).

import { useState } from 'react';
import { eq, useLiveQuery } from '@tanstack/react-db';
import { LIST, uuid } from './api.js';
import { todoCollection } from './collection.js';

export function DbView() {
  const [title, setTitle] = useState('');
  const [failure, setFailure] = useState(null);
  // Mutations applied optimistically whose transaction has not come back through the shape yet.
  const [inFlight, setInFlight] = useState(0);

  function report(tx) {
    setInFlight((n) => n + 1);
    tx.isPersisted.promise
      .then(() => setFailure(null), (e) => setFailure(e.message))
      .finally(() => setInFlight((n) => n - 1));
  }

  const { data: open = [], isLoading } = useLiveQuery((q) => q
    .from({ todo: todoCollection })
    .where(({ todo }) => eq(todo.done, false))
    .orderBy(({ todo }) => todo.created_at)
    .orderBy(({ todo }) => todo.id));
  const { data: done = [] } = useLiveQuery((q) => q
    .from({ todo: todoCollection })
    .where(({ todo }) => eq(todo.done, true)));

  function add(event) {
    event.preventDefault();
    const text = title.trim();
    if (!text) return;
    setTitle('');
    report(todoCollection.insert({
      id: uuid(), list: LIST, title: text, done: false, created_at: new Date().toISOString(),
    }));
  }

  return (
    <section className="panel" data-testid="db-view">
      <h2>Open items <span className="via">useLiveQuery · TanStack DB Electric collection</span></h2>
      <form onSubmit={add}>
        <input
          data-testid="db-input" value={title} maxLength={200}
          placeholder="Quick add (optimistic)" onChange={(e) => setTitle(e.target.value)}
        />
        <button data-testid="db-add" type="submit">Add</button>
      </form>
      {failure && <p className="error" role="alert">{failure}</p>}
      {isLoading ? <p className="muted">Loading…</p> : (
        <ul data-testid="db-list">
          {open.map((todo) => (
            <li key={todo.id} data-title={todo.title}>
              <span>{todo.title}</span>
              <button
                className="finish" aria-label={`Finish ${todo.title}`}
                onClick={() => report(todoCollection.update(todo.id, (d) => {
                  d.done = true;
                }))}
              >Done</button>
            </li>
          ))}
        </ul>
      )}
      <p className="muted footer" data-testid="db-footer" data-in-flight={inFlight}>
        {open.length} open · {done.length} done{inFlight > 0 ? ` · ${inFlight} saving…` : ''}
      </p>
    </section>
  );
}
