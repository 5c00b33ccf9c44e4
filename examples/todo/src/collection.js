// TanStack DB's Electric collection over the same proxied shape. Mutations apply optimistically
// at once; each handler writes through the API server and returns the transaction id, and the
// optimistic state is replaced by the synced row when that transaction comes back in the shape.

import { createCollection } from '@tanstack/react-db';
import { electricCollectionOptions } from '@tanstack/electric-db-collection';
import { api, shapeOptions } from './api.js';

// How long a mutation waits for its transaction to come back (a restarting server included).
const SYNC_TIMEOUT_MS = 60_000;

export const todoCollection = createCollection(
  electricCollectionOptions({
    id: 'todos',
    shapeOptions,
    getKey: (todo) => todo.id,
    onInsert: async ({ transaction }) => {
      const results = await Promise.all(transaction.mutations.map((m) => api.create({
        id: m.modified.id, title: m.modified.title, done: m.modified.done,
      })));
      return { txid: results.map((r) => r.txid), timeout: SYNC_TIMEOUT_MS };
    },
    onUpdate: async ({ transaction }) => {
      const results = await Promise.all(transaction.mutations.map((m) => api.update(m.original.id, {
        ...('title' in m.changes ? { title: m.changes.title } : {}),
        ...('done' in m.changes ? { done: m.changes.done } : {}),
      })));
      return { txid: results.map((r) => r.txid), timeout: SYNC_TIMEOUT_MS };
    },
    onDelete: async ({ transaction }) => {
      const results = await Promise.all(transaction.mutations.map((m) => api.remove(m.original.id)));
      return { txid: results.map((r) => r.txid), timeout: SYNC_TIMEOUT_MS };
    },
  }),
);
