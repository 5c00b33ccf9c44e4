// Starts the reference caching proxy (deploy/nginx/run: nginx in the foreground) in front of a
// running ampere, waits until it answers /v1/health through to the server, and stops it. Its
// output (nginx's error log) goes to a file in the run directory.

import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './ports.mjs';
import { REPO_ROOT, killGroup } from './ampere.mjs';

export const RUN_SCRIPT = join(REPO_ROOT, 'deploy', 'nginx', 'run');

export function nginxInstalled() {
  return spawnSync('sh', ['-c', 'command -v nginx || test -x /usr/sbin/nginx']).status === 0;
}

export class NginxProxy {
  static async start({ origin, runDir, tag, longPollSeconds }) {
    const port = await freePort();
    const logFile = join(runDir, `nginx-${tag}.log`);
    const logFd = openSync(logFile, 'a');
    const args = [
      '--origin', origin, '--listen', `127.0.0.1:${port}`, '--workers', '2',
      '--long-poll-timeout', String(longPollSeconds), '--access-log', join(runDir, `nginx-${tag}.access.log`),
    ];
    // Own process group: stop() signals the script (which stops nginx and removes its temp dir)
    // and, as a last resort, the whole group.
    const child = spawn(RUN_SCRIPT, args, { stdio: ['ignore', logFd, logFd], detached: true });
    closeSync(logFd);
    const proxy = new NginxProxy({ child, port, logFile });
    child.on('exit', (code, signal) => {
      proxy.exited = { code, signal };
    });
    return proxy;
  }

  constructor({ child, port, logFile }) {
    this.child = child;
    this.port = port;
    this.logFile = logFile;
    this.url = `http://127.0.0.1:${port}`;
    this.exited = null;
  }

  async waitHealthy(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no response';
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`nginx exited during startup: ${this.logTail(20)}`);
      try {
        const res = await fetch(`${this.url}/v1/health`, { signal: AbortSignal.timeout(2000) });
        last = `${res.status} ${await res.text()}`;
        if (res.status === 200) return;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`proxy not answering within ${timeoutMs} ms (last: ${last})`);
  }

  logTail(lines = 40) {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  // SIGTERM to the script: it stops nginx and removes its temp dir. The whole group is killed
  // only if that takes too long.
  async stop(graceMs = 5000) {
    this.killNow();
    const deadline = Date.now() + graceMs;
    while (!this.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!this.exited) killGroup(this.child.pid, 'SIGKILL');
  }

  // Synchronous, for exit handlers: the script finishes its cleanup after this process is gone.
  killNow() {
    if (this.exited) return;
    try {
      process.kill(this.child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
}
