// Waiting for a write to come back: every change message of a shape carries the ids of the
// transactions that made it (`headers.txids`). One tracker per ShapeStream remembers the ids it
// has seen and resolves the writes waiting for them.

const trackers = new WeakMap();

export function txidTracker(stream) {
  let t = trackers.get(stream);
  if (t) return t;
  const seen = new Set();
  const waiting = new Map();
  stream.subscribe((messages) => {
    for (const message of messages) {
      for (const txid of message.headers?.txids ?? []) {
        const id = Number(txid);
        seen.add(id);
        for (const resolve of waiting.get(id) ?? []) resolve();
        waiting.delete(id);
      }
    }
  });
  t = {
    wait(txid) {
      if (seen.has(txid)) return Promise.resolve();
      return new Promise((resolve) => {
        waiting.set(txid, [...(waiting.get(txid) ?? []), resolve]);
      });
    },
  };
  trackers.set(stream, t);
  return t;
}
