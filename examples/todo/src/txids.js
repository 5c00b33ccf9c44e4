// Waiting for a write to come back: every change message of a shape carries the ids of the
// transactions that made it (`headers.txids`). One tracker per ShapeStream remembers the ids it
// has seen and resolves the writes waiting for them.
//
// A shape that must be fetched again (`must-refetch`: the server rotated it) comes back as a
// snapshot, whose rows carry no txids; it includes every write committed before it, so the
// writes waiting then are resolved once it is up to date. A bound covers anything else.

const trackers = new WeakMap();
const WAIT_BOUND_MS = 60_000;

export function txidTracker(stream) {
  let t = trackers.get(stream);
  if (t) return t;
  const seen = new Set();
  const waiting = new Map(); // txid -> resolve functions
  let refetching = false;
  const resolve = (txid) => {
    for (const done of waiting.get(txid) ?? []) done();
    waiting.delete(txid);
  };
  stream.subscribe((messages) => {
    for (const message of messages) {
      const control = message.headers?.control;
      if (control === 'must-refetch') refetching = true;
      if (control === 'up-to-date' && refetching) {
        refetching = false;
        for (const txid of [...waiting.keys()]) resolve(txid);
      }
      for (const txid of message.headers?.txids ?? []) {
        seen.add(Number(txid));
        resolve(Number(txid));
      }
    }
  });
  t = {
    wait(txid) {
      if (seen.has(txid)) return Promise.resolve();
      return new Promise((done) => {
        const timer = setTimeout(done, WAIT_BOUND_MS);
        const finish = () => {
          clearTimeout(timer);
          done();
        };
        waiting.set(txid, [...(waiting.get(txid) ?? []), finish]);
      });
    },
  };
  trackers.set(stream, t);
  return t;
}
