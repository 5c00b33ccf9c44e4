#!/usr/bin/env node
// Conformance harness: a throwaway Postgres 15 cluster, then for each monoio I/O driver a fresh
// ampere server and the node:test files under test/, driven through the official
// @electric-sql/client. Prints `conformance: N passed, M failed` last and exits non-zero on any
// failure. Everything it starts is stopped on success, failure, timeout and SIGINT/SIGTERM.
//
// Environment knobs (all optional):
//   CONFORMANCE_RUNS=epoll:long-poll,uring:long-poll,epoll:sse,epoll:long-poll:tls,epoll:long-poll:nginx,epoll:sse:nginx
//                                     server runs as <io driver>:<client live mode>[:tls|:nginx]
//                                     (the default; in sse mode every client follows with
//                                     `liveSse: true`; a tls run uses a second cluster that
//                                     accepts only TLS, reached with sslmode=verify-full; an
//                                     nginx run puts deploy/nginx/run between client and server)
//   CONFORMANCE_DRIVERS=epoll,uring   shorthand: these drivers, long-poll mode only
//   CONFORMANCE_FILTER=substring      only test files whose name contains it
//   CONFORMANCE_TIMEOUT_S=360         bound on the whole run after the binary exists
//   CONFORMANCE_CONCURRENCY=3         test files run in parallel per server
//   AMPERE_BIN=/path/to/ampere        binary to test (default: <target>/release/ampere, built
//                                     with cargo when missing)
//   CONFORMANCE_KEEP_LOGS=1           keep the run directory (server logs) even on success

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster } from './lib/postgres.mjs';
import { AmpereServer, ensureBinary, killGroup } from './lib/ampere.mjs';
import { NginxProxy, nginxInstalled } from './lib/proxy.mjs';

const HERE = import.meta.dirname;
const RUNS = (process.env.CONFORMANCE_RUNS
  ?? (process.env.CONFORMANCE_DRIVERS
    ? process.env.CONFORMANCE_DRIVERS.split(',').map((d) => `${d}:long-poll`).join(',')
    : 'epoll:long-poll,uring:long-poll,epoll:sse,epoll:long-poll:tls,epoll:long-poll:nginx,epoll:sse:nginx'))
  .split(',').filter(Boolean).map((r) => {
    const [driver, mode = 'long-poll', extra = ''] = r.split(':');
    if (!['epoll', 'uring'].includes(driver) || !['long-poll', 'sse'].includes(mode)
      || !['', 'tls', 'nginx'].includes(extra)) {
      throw new Error(`CONFORMANCE_RUNS: bad entry ${r} (want epoll|uring:long-poll|sse[:tls|:nginx])`);
    }
    return { driver, mode, tls: extra === 'tls', nginx: extra === 'nginx' };
  });
const TIMEOUT_S = Number(process.env.CONFORMANCE_TIMEOUT_S ?? 360);
const CONCURRENCY = Number(process.env.CONFORMANCE_CONCURRENCY ?? 3);

// Everything that must be torn down, in reverse order of creation.
const live = { pg: null, tlsPg: null, server: null, proxy: null, testPid: null, runDir: null };
let totals = { passed: 0, failed: 0 };
let finished = false;

function cleanupSync() {
  if (live.testPid) killGroup(live.testPid, 'SIGKILL');
  live.proxy?.killNow();
  live.proxy = null;
  live.server?.killNow();
  live.pg?.stop();
  live.pg = null;
  live.tlsPg?.stop();
  live.tlsPg = null;
  live.server = null;
}

function finish(code) {
  if (finished) return;
  finished = true;
  cleanupSync();
  if (live.runDir) {
    if (code === 0 && !process.env.CONFORMANCE_KEEP_LOGS) {
      rmSync(live.runDir, { recursive: true, force: true });
    } else {
      console.log(`conformance: logs kept in ${live.runDir}`);
    }
  }
  console.log(`conformance: ${totals.passed} passed, ${totals.failed} failed`);
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`conformance: interrupted by ${signal}`);
    totals.failed += 1;
    finish(130);
  });
}
process.on('exit', cleanupSync);

function testFiles() {
  const filter = process.env.CONFORMANCE_FILTER ?? '';
  return readdirSync(join(HERE, 'test'))
    .filter((f) => f.endsWith('.test.mjs') && f.includes(filter))
    .sort()
    .map((f) => join('test', f));
}

// The spec reporter ends with `ℹ pass N` / `ℹ fail N` / `ℹ cancelled N` summary lines. (A TAP
// file reporter would be tidier, but --test-force-exit exits before a file stream is flushed.)
function parseSummary(output) {
  const counts = { pass: 0, fail: 0, cancelled: 0, seen: false };
  for (const line of output.split('\n')) {
    const m = /^\u2139 (pass|fail|cancelled) (\d+)$/.exec(line.trim());
    if (m) {
      counts[m[1]] = Number(m[2]);
      counts.seen = true;
    }
  }
  return counts;
}

function runTests({ url, originUrl, databaseUrl, driver, mode }) {
  // --test-force-exit: the client's up-to-date tracker arms a 60 s throttle timer (not unref'd)
  // for a localStorage write, which would keep every test file's process alive for a minute.
  const args = [
    '--test', '--test-force-exit', `--test-concurrency=${CONCURRENCY}`, '--test-timeout=150000',
    '--test-reporter=spec', ...testFiles(),
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: HERE,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
      env: {
        ...process.env, AMPERE_URL: url, DATABASE_URL: databaseUrl, AMPERE_DRIVER: driver,
        AMPERE_LIVE_MODE: mode, AMPERE_ORIGIN_URL: originUrl,
      },
    });
    live.testPid = child.pid;
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.on('close', (code, signal) => {
      live.testPid = null;
      const counts = parseSummary(output);
      const passed = counts.pass;
      let failed = counts.fail + counts.cancelled;
      // A runner that crashed or was killed without reporting failures is still a failure.
      if ((code !== 0 || signal) && failed === 0) failed = 1;
      if (!counts.seen || passed + failed === 0) failed = Math.max(failed, 1);
      resolve({ passed, failed });
    });
  });
}

async function runDriver({ bin, pg, driver, mode, tls, nginx, runDir }) {
  const over = (tls ? ', Postgres over TLS only' : '') + (nginx ? ', through deploy/nginx/run' : '');
  const name = `${driver} ${mode}${tls ? ' tls' : ''}${nginx ? ' nginx' : ''}`;
  console.log(`\n=== conformance: io driver ${driver}, live mode ${mode}${over} ===`);
  // A fresh database and stream id per server run, so replication slots never clash.
  const tag = `${driver}_${mode.replace('-', '')}${tls ? '_tls' : ''}${nginx ? '_nginx' : ''}`;
  const databaseUrl = pg.createDatabase(`conformance_${tag}`);
  const server = await AmpereServer.start({
    bin, databaseUrl, driver, streamId: `conf_${tag}_${process.pid}`, runDir,
  });
  live.server = server;
  let result;
  try {
    await server.waitHealthy();
    console.log(`conformance: ampere (${driver}) healthy at ${server.url}`);
    let url = server.url;
    if (nginx) {
      // The caching proxy in front, sized for the server's 4 s long-poll (lib/ampere.mjs).
      live.proxy = await NginxProxy.start({
        origin: `127.0.0.1:${server.port}`, runDir, tag, longPollSeconds: 4,
      });
      await live.proxy.waitHealthy();
      url = live.proxy.url;
      console.log(`conformance: nginx proxy at ${url}`);
    }
    result = await runTests({ url, originUrl: server.url, databaseUrl, driver, mode });
  } catch (e) {
    console.error(`conformance: ${driver}: ${e.message}`);
    result = { passed: 0, failed: 1 };
  }
  if (live.proxy) {
    if (result.failed > 0) {
      console.log(`--- nginx log tail (${live.proxy.logFile}) ---\n${live.proxy.logTail(40)}`);
    }
    await live.proxy.stop();
    live.proxy = null;
  }
  const graceful = await server.stop();
  live.server = null;
  if (!graceful) {
    console.error(`conformance: ${driver}: ampere ignored SIGTERM for 5 s and was killed`);
    result.failed += 1;
  }
  if (result.failed > 0) {
    console.log(`--- ampere (${driver}) log tail (${server.logFile}) ---`);
    console.log(server.logTail(120));
    console.log('--- end of log tail ---');
  }
  console.log(`conformance: ${name}: ${result.passed} passed, ${result.failed} failed`);
  return result;
}

async function main() {
  const bin = ensureBinary();
  const timer = setTimeout(() => {
    console.error(`conformance: run exceeded ${TIMEOUT_S} s, aborting`);
    if (live.server) {
      console.log(`--- ampere (${live.server.driver}) log tail ---\n${live.server.logTail(80)}`);
    }
    totals.failed += 1;
    finish(1);
  }, TIMEOUT_S * 1000);
  timer.unref();

  live.runDir = mkdtempSync(join(tmpdir(), 'ampere-conf-run-'));
  live.pg = await PgCluster.start();
  console.log(`conformance: postgres on port ${live.pg.port}, binary ${bin}`);
  for (const { driver, mode, tls, nginx } of RUNS) {
    if (nginx && !nginxInstalled()) {
      console.log(`conformance: SKIPPED ${driver}:${mode}:nginx: nginx is not installed (apt-get install nginx)`);
      continue;
    }
    if (tls && !live.tlsPg) {
      live.tlsPg = await PgCluster.start({ tls: true });
      console.log(`conformance: TLS-only postgres on port ${live.tlsPg.port}`);
    }
    const pg = tls ? live.tlsPg : live.pg;
    const r = await runDriver({ bin, pg, driver, mode, tls, nginx, runDir: live.runDir });
    totals.passed += r.passed;
    totals.failed += r.failed;
  }
  if (totals.failed > 0) {
    console.log('--- postgres log tail ---');
    console.log(live.pg.logTail(30));
  }
  finish(totals.failed > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(`conformance: harness error: ${e.stack ?? e}`);
  totals.failed += 1;
  finish(1);
});
