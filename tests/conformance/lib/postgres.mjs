// A throwaway Postgres 15 cluster for the conformance run: initdb into a private temporary
// directory owned by the `postgres` OS user (initdb refuses to run as root), start it on a free
// loopback port with logical replication enabled, and tear everything down on stop().

import { execFileSync, spawnSync } from 'node:child_process';
import {
  mkdtempSync, rmSync, chownSync, chmodSync, readFileSync, existsSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.mjs';

const PG_BIN = process.env.AMPERE_PG_BIN ?? '/usr/lib/postgresql/15/bin';

function postgresIds() {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

// Runs a Postgres binary as the postgres OS user (we are root on the project's machines).
function asPostgres(bin, args) {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot
    ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...args]]
    : [join(PG_BIN, bin), args];
  const out = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
  if (out.status !== 0) {
    throw new Error(`${bin} ${args.join(' ')} failed (${out.status}): ${out.stderr}${out.stdout}`);
  }
  return out.stdout;
}

// A CA and a server certificate it signed for `localhost`, made with the openssl CLI in `dir`.
function makeCertificates(dir) {
  const run = (args) => {
    const out = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    if (out.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${out.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', '/CN=ampere conformance CA']);
  run(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext']);
  chmodSync(join(dir, 'server.key'), 0o600);
}

export class PgCluster {
  // With `tls`, the server has `ssl=on` and `pg_hba.conf` accepts only TLS (`hostssl`); its URLs
  // name `localhost` (the certificate's name) with `sslmode=verify-full` and the CA, which both
  // ampere and node-postgres read.
  static async start({ tls = false } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'ampere-conf-pg-'));
    if (process.getuid?.() === 0) {
      const { uid, gid } = postgresIds();
      chownSync(dir, uid, gid);
    }
    const cluster = new PgCluster(dir, await freePort(), tls);
    try {
      asPostgres('initdb', [
        '-D', cluster.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
        '--locale=C.UTF-8', '--no-sync',
      ]);
      const options = [
        `-p ${cluster.port}`, `-k ${dir}`,
        '-c listen_addresses=127.0.0.1', '-c wal_level=logical',
        '-c max_replication_slots=20', '-c max_wal_senders=20', '-c fsync=off',
        '-c full_page_writes=off', '-c max_connections=200', '-c autovacuum=off',
        ...(tls ? ['-c ssl=on', `-c ssl_cert_file=${dir}/server.crt`,
          `-c ssl_key_file=${dir}/server.key`] : []),
      ].join(' ');
      if (tls) {
        makeCertificates(dir);
        writeFileSync(join(cluster.dataDir, 'pg_hba.conf'), 'local all all trust\n'
          + 'hostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\n');
        if (process.getuid?.() === 0) {
          const { uid, gid } = postgresIds();
          for (const f of ['server.key', 'server.crt', 'ca.crt']) chownSync(join(dir, f), uid, gid);
          chownSync(join(cluster.dataDir, 'pg_hba.conf'), uid, gid);
        }
      }
      asPostgres('pg_ctl', ['-D', cluster.dataDir, '-l', cluster.logFile, '-w', '-t', '30',
        '-o', options, 'start']);
      cluster.running = true;
    } catch (e) {
      cluster.stop();
      throw e;
    }
    return cluster;
  }

  constructor(dir, port, tls = false) {
    this.dir = dir;
    this.port = port;
    this.tls = tls;
    this.dataDir = join(dir, 'data');
    this.logFile = join(dir, 'pg.log');
    this.running = false;
  }

  url(db = 'postgres') {
    if (this.tls) {
      return `postgresql://postgres@localhost:${this.port}/${db}`
        + `?sslmode=verify-full&sslrootcert=${this.dir}/ca.crt`;
    }
    return `postgresql://postgres@127.0.0.1:${this.port}/${db}`;
  }

  createDatabase(name) {
    const out = spawnSync('psql', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres',
      '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`],
    { encoding: 'utf8', timeout: 30_000 });
    if (out.status !== 0) throw new Error(`create database ${name}: ${out.stderr}`);
    return this.url(name);
  }

  logTail(lines = 40) {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  // Synchronous so it can run from process exit handlers.
  stop() {
    if (this.running) {
      try {
        asPostgres('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', '-t', '20', 'stop']);
      } catch (e) {
        console.error(`warning: stopping postgres: ${e.message}`);
      }
      this.running = false;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
