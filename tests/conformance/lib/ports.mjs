// Picks a free loopback TCP port by binding to port 0 and releasing it. There is a small race
// (another process may grab it before we reuse it), acceptable for a test harness.

import { createServer } from 'node:net';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
