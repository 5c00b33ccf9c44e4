// A private ampere server for tests that crash and restart it (crash.test.mjs): its own port,
// storage directory and replication stream id, so it never disturbs the harness's server.
// `kill9()` + `restart()` bring it back on the same port and storage directory.

import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { binaryPath } from './ampere.mjs';
import { freePort } from './ports.mjs';

export class RestartableServer {
  static async start({ databaseUrl, driver = 'epoll', env = {} }) {
    const dir = mkdtempSync(join(tmpdir(), 'ampere-crash-'));
    const s = new RestartableServer({
      bin: binaryPath(),
      databaseUrl,
      driver,
      port: await freePort(),
      dir,
      streamId: `crash_${randomBytes(4).toString('hex')}`,
      extraEnv: env,
    });
    await s.restart();
    return s;
  }

  constructor({ bin, databaseUrl, driver, port, dir, streamId, extraEnv = {} }) {
    Object.assign(this, { bin, databaseUrl, driver, port, dir, streamId, extraEnv });
    this.url = `http://127.0.0.1:${port}`;
    this.logFile = join(dir, 'ampere.log');
    this.child = null;
    this.starts = 0;
  }

  get slotName() {
    return `electric_slot_${this.streamId}`;
  }

  spawn() {
    this.starts += 1;
    const env = {
      ...process.env,
      DATABASE_URL: this.databaseUrl,
      ELECTRIC_PORT: String(this.port),
      ELECTRIC_INSECURE: 'true',
      ELECTRIC_STORAGE_DIR: join(this.dir, 'storage'),
      ELECTRIC_LONG_POLL_TIMEOUT: '4000',
      ELECTRIC_REPLICATION_STREAM_ID: this.streamId,
      AMPERE_IO_DRIVER: this.driver,
      AMPERE_LOG: process.env.AMPERE_LOG ?? 'info',
      ...this.extraEnv,
    };
    delete env.ELECTRIC_SECRET;
    const fd = openSync(this.logFile, 'a');
    const child = spawn(this.bin, [], { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.exitInfo = null;
    child.on('exit', (code, signal) => {
      child.exitInfo = { code, signal };
    });
    this.child = child;
  }

  async waitActive(timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no response';
    while (Date.now() < deadline) {
      if (this.child?.exitInfo) {
        throw new Error(`ampere exited: ${JSON.stringify(this.child.exitInfo)}\n${this.logTail()}`);
      }
      try {
        const res = await fetch(`${this.url}/v1/health`, { signal: AbortSignal.timeout(2000) });
        last = `${res.status} ${await res.text()}`;
        if (res.status === 200 && last.includes('active')) return;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`ampere not active within ${timeoutMs} ms (last: ${last})\n${this.logTail()}`);
  }

  async restart() {
    this.spawn();
    const t0 = Date.now();
    await this.waitActive();
    return Date.now() - t0;
  }

  // SIGKILL and wait for the exit, so the port is free for the restart.
  async kill9() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitInfo) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  // Resident set size of the running server, in bytes.
  rssBytes() {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
    if (!Number.isFinite(kib)) throw new Error(`no VmRSS in /proc/${this.child.pid}/status`);
    return kib * 1024;
  }

  logTail(lines = 60) {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  // Kills the server and removes its directory; the caller drops the slot.
  async stop() {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
