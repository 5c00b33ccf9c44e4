// Starts the ampere release binary as a child process with the Electric-compatible environment,
// captures its log to a file, waits for `GET /v1/health` to report `active`, and stops it.

import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from './ports.mjs';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');

export function binaryPath() {
  if (process.env.AMPERE_BIN) return process.env.AMPERE_BIN;
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, 'target');
  return join(resolve(REPO_ROOT, targetDir), 'release', 'ampere');
}

// Builds the binary when it is missing (CI starts from a clean checkout). Bounded so a wedged
// build cannot hang CI forever.
export function ensureBinary() {
  const bin = binaryPath();
  if (existsSync(bin)) return bin;
  if (process.env.AMPERE_BIN) throw new Error(`AMPERE_BIN=${bin} does not exist`);
  console.log(`conformance: ${bin} missing, running cargo build --release --bin ampere`);
  const out = spawnSync('cargo', ['build', '--release', '--bin', 'ampere'], {
    cwd: REPO_ROOT, stdio: 'inherit', timeout: 30 * 60_000,
  });
  if (out.status !== 0 || !existsSync(bin)) {
    throw new Error(`cargo build --release --bin ampere failed (status ${out.status})`);
  }
  return bin;
}

export class AmpereServer {
  static async start({ bin, databaseUrl, driver, streamId, runDir }) {
    const port = await freePort();
    const storageDir = join(runDir, `storage-${streamId}`);
    mkdirSync(storageDir, { recursive: true });
    const logFile = join(runDir, `ampere-${streamId}.log`);
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl,
      ELECTRIC_PORT: String(port),
      ELECTRIC_INSECURE: 'true',
      ELECTRIC_ENABLE_INTEGRATION_TESTING: 'true',
      ELECTRIC_STORAGE_DIR: storageDir,
      ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD: '10000',
      ELECTRIC_LONG_POLL_TIMEOUT: '4000',
      ELECTRIC_REPLICATION_STREAM_ID: streamId,
      AMPERE_IO_DRIVER: driver,
      AMPERE_LOG: process.env.AMPERE_LOG ?? 'info',
    };
    delete env.ELECTRIC_SECRET;
    const logFd = openSync(logFile, 'a');
    // Own process group, so stop() can take down anything the server might spawn.
    const child = spawn(bin, [], { env, stdio: ['ignore', logFd, logFd], detached: true });
    closeSync(logFd);
    const server = new AmpereServer({ child, port, storageDir, logFile, driver });
    child.on('exit', (code, signal) => {
      server.exited = { code, signal };
    });
    return server;
  }

  constructor({ child, port, storageDir, logFile, driver }) {
    this.child = child;
    this.port = port;
    this.storageDir = storageDir;
    this.logFile = logFile;
    this.driver = driver;
    this.url = `http://127.0.0.1:${port}`;
    this.exited = null;
  }

  async waitHealthy(timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no response';
    while (Date.now() < deadline) {
      if (this.exited) {
        throw new Error(`ampere exited during startup (${JSON.stringify(this.exited)})`);
      }
      try {
        const res = await fetch(`${this.url}/v1/health`, { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        last = `${res.status} ${body}`;
        if (res.status === 200 && JSON.parse(body).status === 'active') return;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`ampere not healthy within ${timeoutMs} ms (last: ${last})`);
  }

  logTail(lines = 80) {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  // Graceful first (SIGTERM), then SIGKILL: a server that does not exit is itself a finding,
  // reported by the caller through the returned flag.
  async stop(graceMs = 5000) {
    let graceful = true;
    if (!this.exited) {
      killGroup(this.child.pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (!this.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (!this.exited) {
        graceful = false;
        killGroup(this.child.pid, 'SIGKILL');
        while (!this.exited) await new Promise((r) => setTimeout(r, 50));
      }
    }
    rmSync(this.storageDir, { recursive: true, force: true });
    return graceful;
  }

  // Synchronous last resort for process exit handlers.
  killNow() {
    if (!this.exited) killGroup(this.child.pid, 'SIGKILL');
    rmSync(this.storageDir, { recursive: true, force: true });
  }
}

export function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}
