/**
 * Test harness: a single-node OpenStack Swift with the s3api middleware on loopback, from
 * Debian's swift-proxy/-account/-container/-object packages (scripts/install.sh --test).
 *
 * `startSwift()` writes rings and configs into a fresh temp dir, starts the account,
 * container, object and proxy servers on free 127.0.0.1 ports, waits until all four answer
 * `GET /healthcheck`, and returns a handle. It never skips: missing binaries or a missing
 * /etc/swift/swift.conf throw. Call `stop()` (e.g. in `after()`); it kills the four
 * processes by pid, waits for them and removes the temp dir. Process output is kept in
 * `<dir>/logs/*.log` until then (set ETCDSNAP_KEEP_SWIFT=1 to keep the dir for debugging).
 *
 * S3 credentials: access key `test:tester`, secret `Sw1ft-s3cr3t-etcdsnap-4f9c` (distinctive, so tests can look for leaks), region `us-east-1`; use
 * path-style addressing (no storage_domain is configured). Buckets are created with a
 * SigV2-signed S3 request, so this helper needs no S3 client (and no memcached).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './server.js';
import type { S3Settings } from '../../src/store/s3.js';

// Tests and benches build S3 clients in-process: they set the AWS SDK's Node-version warning
// switch, as cli/main.ts does for the binary (the store itself reads no environment).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface Swift {
  /** `127.0.0.1:<port>`: what `--etcd-s3-endpoint` takes (no scheme). */
  endpoint: string;
  /** `http://127.0.0.1:<port>` or `https://...` when started with TLS. */
  url: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** The temp dir holding configs, rings, data and logs. */
  dir: string;
  /** Creates a bucket (a Swift container) in the test account; succeeds if it exists. */
  createBucket(name: string): Promise<void>;
  /** Stops only the proxy (S3 becomes unreachable: connection refused). */
  stopProxy(): Promise<void>;
  /** Starts the proxy again on the same port and waits for its healthcheck. */
  startProxy(): Promise<void>;
  /** Stops all servers and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartSwiftOptions {
  /** Serve the proxy over HTTPS with this certificate and key (PEM). */
  tls?: { certPem: string; keyPem: string };
  /** Bound on the wait for all healthchecks; default 60 s. */
  readyTimeoutMs?: number;
}

const ACCESS_KEY = 'test:tester';
const SECRET_KEY = 'Sw1ft-s3cr3t-etcdsnap-4f9c';
const REGION = 'us-east-1';
const BACKENDS = ['account', 'container', 'object'] as const;
type Role = (typeof BACKENDS)[number] | 'proxy';

const SWIFT_CONF = '/etc/swift/swift.conf';

function onPath(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function checkInstalled(): void {
  const bins = ['swift-ring-builder', ...BACKENDS.map((b) => `swift-${b}-server`), 'swift-proxy-server'];
  const missing = bins.filter((b) => !onPath(b));
  if (missing.length > 0) {
    throw new Error(`Swift is not installed (missing ${missing.join(', ')}); run: sudo bash scripts/install.sh --test`);
  }
  // Swift reads its hash prefix/suffix from this hard-coded path; the Debian package installs it.
  if (!existsSync(SWIFT_CONF) || !/swift_hash_path_(suffix|prefix)/.test(readFileSync(SWIFT_CONF, 'utf8'))) {
    throw new Error(`${SWIFT_CONF} with swift_hash_path_suffix/prefix is missing; run: sudo bash scripts/install.sh --test`);
  }
}

/** The interpreter Debian's Swift scripts run with (the shebang of swift-ring-builder). */
function swiftPython(): string {
  const bin = spawnSync('sh', ['-c', 'command -v swift-ring-builder'], { encoding: 'utf8' }).stdout.trim();
  const m = /^#!\s*(\S+)/.exec(readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '');
  return m?.[1] ?? '/usr/bin/python3';
}

/**
 * A self-signed certificate for `localhost` and `127.0.0.1` (made with openssl), to serve
 * Swift over TLS (`startSwift({ tls })`) and to trust as the endpoint CA. The files are
 * written into `dir`: `cert.pem` (`certFile`) and `key.pem`.
 */
export function selfSignedCert(dir: string): { certFile: string; certPem: string; keyPem: string } {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { certFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
}

/** Runs a command; resolves with its output, rejects with its output on failure. */
function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', (err) => reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}`)));
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${out}`));
    });
  });
}

function backendConf(dir: string, role: (typeof BACKENDS)[number], port: number): string {
  return [
    '[DEFAULT]',
    'bind_ip = 127.0.0.1',
    `bind_port = ${port}`,
    `devices = ${path.join(dir, 'srv')}`,
    'mount_check = false',
    `swift_dir = ${dir}`,
    'workers = 0',
    'log_address = /nonexistent',
    'log_level = INFO',
    '',
    '[pipeline:main]',
    `pipeline = healthcheck ${role}-server`,
    '',
    `[app:${role}-server]`,
    `use = egg:swift#${role}`,
    '',
    '[filter:healthcheck]',
    'use = egg:swift#healthcheck',
    '',
  ].join('\n');
}

function proxyConf(dir: string, port: number, tls: boolean): string {
  const filters = ['catch_errors', 'gatekeeper', 'healthcheck', 'proxy-logging', 'cache', 'listing_formats', 's3api', 'tempauth', 'copy', 'slo', 'dlo'];
  const eggs: Record<string, string> = { 'proxy-logging': 'proxy_logging', cache: 'memcache' };
  const lines = [
    '[DEFAULT]',
    'bind_ip = 127.0.0.1',
    `bind_port = ${port}`,
    `swift_dir = ${dir}`,
    'workers = 0',
    'log_address = /nonexistent',
    'log_level = INFO',
    ...(tls ? [`cert_file = ${path.join(dir, 'proxy-cert.pem')}`, `key_file = ${path.join(dir, 'proxy-key.pem')}`] : []),
    '',
    '[pipeline:main]',
    'pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server',
    '',
    '[app:proxy-server]',
    'use = egg:swift#proxy',
    'account_autocreate = true',
    '',
    '[filter:s3api]',
    'use = egg:swift#s3api',
    `location = ${REGION}`,
    '',
    '[filter:tempauth]',
    'use = egg:swift#tempauth',
    `user_test_tester = ${SECRET_KEY} .admin`,
    '',
  ];
  for (const f of filters) {
    if (f === 's3api' || f === 'tempauth') continue;
    lines.push(`[filter:${f}]`, `use = egg:swift#${eggs[f] ?? f}`, '');
  }
  return lines.join('\n');
}

interface Proc {
  role: Role;
  child: ChildProcess;
  exited: Promise<void>;
  logFile: string;
}

function httpGet(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.request(url, { method, headers, timeout: 2000, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout requesting ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Processes still running when the test process exits are killed (belt and braces). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

export async function startSwift(opts: StartSwiftOptions = {}): Promise<Swift> {
  checkInstalled();
  installExitHook();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'etcdsnap-swift-'));
  const logs = path.join(dir, 'logs');
  mkdirSync(path.join(dir, 'srv', 'd1'), { recursive: true });
  mkdirSync(logs);
  const procs = new Map<Role, Proc>();
  let stopped = false;

  const ports: Record<Role, number> = {
    account: await freePort(),
    container: await freePort(),
    object: await freePort(),
    proxy: await freePort(),
  };
  const scheme = opts.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${ports.proxy}`;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;

  const spawnRole = (role: Role): Proc => {
    const logFile = path.join(logs, `${role}.log`);
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(`swift-${role}-server`, [path.join(dir, `${role}-server.conf`), '--verbose'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    live.add(child);
    const exited = new Promise<void>((resolve) => {
      child.once('close', () => {
        live.delete(child);
        out.end();
        resolve();
      });
      child.once('error', (err) => {
        out.write(`spawn error: ${err.message}\n`);
      });
    });
    const p: Proc = { role, child, exited, logFile };
    procs.set(role, p);
    return p;
  };

  const logTail = (): string =>
    [...procs.values()]
      .map((p) => {
        let text = '';
        try {
          text = readFileSync(p.logFile, 'utf8');
        } catch {
          /* not written yet */
        }
        const tail = text.split('\n').slice(-15).join('\n');
        return `--- swift-${p.role}-server (pid ${p.child.pid ?? '?'}, exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}):\n${tail}`;
      })
      .join('\n');

  const waitHealthy = async (roles: Role[]): Promise<void> => {
    const deadline = Date.now() + readyTimeoutMs;
    const pending = new Set(roles);
    while (pending.size > 0) {
      for (const role of [...pending]) {
        const p = procs.get(role);
        if (p && (p.child.exitCode !== null || p.child.signalCode !== null)) {
          throw new Error(`swift-${role}-server exited before it was ready (dir ${dir})\n${logTail()}`);
        }
        const base = role === 'proxy' ? url : `http://127.0.0.1:${ports[role]}`;
        try {
          const r = await httpGet(`${base}/healthcheck`);
          if (r.status === 200 && r.body.trim() === 'OK') pending.delete(role);
        } catch {
          /* not listening yet */
        }
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`Swift not ready after ${readyTimeoutMs} ms (waiting for ${[...pending].join(', ')}; dir ${dir})\n${logTail()}`);
      }
      await sleep(200);
    }
  };

  const stopRole = async (role: Role): Promise<void> => {
    const p = procs.get(role);
    if (!p) return;
    procs.delete(role);
    if (p.child.exitCode === null && p.child.signalCode === null && p.child.pid !== undefined) {
      p.child.kill('SIGTERM');
      const killed = await Promise.race([p.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!killed) {
        p.child.kill('SIGKILL');
        await p.exited;
      }
    } else {
      await p.exited;
    }
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([...procs.keys()].map((r) => stopRole(r)));
    if (process.env.ETCDSNAP_KEEP_SWIFT !== '1') rmSync(dir, { recursive: true, force: true });
  };

  try {
    // One ring per backend (part power 8, 1 replica, one device). Built through Swift's
    // RingBuilder API in one Python process, the same calls swift-ring-builder's
    // create/add/rebalance make: nine CLI calls cost ~5 s of Python start-ups.
    const rings = BACKENDS.map((role) => ({ file: path.join(dir, `${role}.ring.gz`), port: ports[role] }));
    for (const role of BACKENDS) writeFileSync(path.join(dir, `${role}-server.conf`), backendConf(dir, role, ports[role]));
    await run(swiftPython(), [
      '-c',
      [
        'import json, sys',
        'from swift.common.ring import RingBuilder',
        'for r in json.loads(sys.argv[1]):',
        '    b = RingBuilder(8, 1, 1)',
        "    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': r['port'], 'device': 'd1', 'weight': 1})",
        '    b.rebalance()',
        "    b.get_ring().save(r['file'])",
      ].join('\n'),
      JSON.stringify(rings),
    ]);
    if (opts.tls) {
      writeFileSync(path.join(dir, 'proxy-cert.pem'), opts.tls.certPem);
      writeFileSync(path.join(dir, 'proxy-key.pem'), opts.tls.keyPem, { mode: 0o600 });
    }
    writeFileSync(path.join(dir, 'proxy-server.conf'), proxyConf(dir, ports.proxy, opts.tls !== undefined));
    for (const role of BACKENDS) spawnRole(role);
    spawnRole('proxy');
    await waitHealthy(['account', 'container', 'object', 'proxy']);
  } catch (err) {
    await stop();
    throw err;
  }

  /**
   * S3 CreateBucket, signed with AWS signature v2 (s3api accepts it) so that no S3 client
   * is needed here; Swift's own /auth/v1.0 would need memcached for its tokens.
   */
  const createBucket = async (name: string): Promise<void> => {
    const date = new Date().toUTCString();
    const resource = `/${encodeURIComponent(name)}`;
    const signature = createHmac('sha1', SECRET_KEY).update(`PUT\n\n\n${date}\n${resource}`).digest('base64');
    const r = await httpGet(`${url}${resource}`, { Date: date, Authorization: `AWS ${ACCESS_KEY}:${signature}`, 'Content-Length': '0' }, 'PUT');
    if (r.status !== 200) throw new Error(`creating bucket ${name} failed: HTTP ${r.status} ${r.body}`);
  };

  return {
    endpoint: `127.0.0.1:${ports.proxy}`,
    url,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    region: REGION,
    dir,
    createBucket,
    stopProxy: () => stopRole('proxy'),
    startProxy: async () => {
      if (stopped) throw new Error('Swift was stopped');
      if (procs.has('proxy')) return;
      // The old listener may linger briefly; retry the bind a few times.
      for (let attempt = 1; ; attempt++) {
        spawnRole('proxy');
        try {
          await waitHealthy(['proxy']);
          return;
        } catch (err) {
          await stopRole('proxy');
          if (attempt >= 3) throw err;
          await sleep(500);
        }
      }
    },
    stop,
  };
}

/**
 * S3Store settings for this Swift: plain http, path-style, 30 s per call, the test keys.
 * `over` adds or replaces fields (e.g. `{ insecure: false, endpointCA }` for a TLS Swift).
 */
export function swiftSettings(swift: Swift, bucket: string, folder = '', over: Partial<S3Settings> = {}): S3Settings {
  return {
    endpoint: swift.endpoint,
    insecure: true,
    skipSslVerify: false,
    accessKey: swift.accessKey,
    secretKey: swift.secretKey,
    bucket,
    region: swift.region,
    folder,
    timeoutMs: 30_000,
    bucketLookup: 'path',
    ...over,
  };
}

/** The `etcd-snapshot` command's flags for a bucket (folder) of this Swift, path-style over http. */
export function s3CliFlags(swift: Swift, bucket: string, folder?: string): string[] {
  return [
    '--s3',
    '--s3-endpoint',
    swift.endpoint,
    '--s3-insecure',
    '--s3-bucket',
    bucket,
    ...(folder ? ['--s3-folder', folder] : []),
    '--s3-bucket-lookup-type',
    'path',
  ];
}

/** The server's flags for the same (`--etcd-s3-*`). */
export function s3ServerFlags(swift: Swift, bucket: string, folder?: string): string[] {
  return s3CliFlags(swift, bucket, folder).map((f) => (f.startsWith('--s3') ? `--etcd-${f.slice(2)}` : f));
}
