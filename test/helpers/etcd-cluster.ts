/**
 * A plain etcd cluster for the agent tests: a CA and certificates made with the project's
 * own PKI code (src/etcd/pki.ts), and N Debian `etcd` members on loopback ports with client
 * and peer TLS (client certificates required). Member certificates carry only the IP
 * 127.0.0.1 (no DNS:localhost), so a client must check them against the endpoint's address,
 * as etcdctl does. Also `startAgent`, `etcdsnap agent` against such a cluster.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCa, issueLeaf } from '../../src/etcd/pki.js';
import { BIN, cleanEnv, freePort, type LogLine, NODE_FLAGS, ServerProcess, tempDir } from './server.js';

export interface ClusterTls {
  ca: string;
  cert: string;
  key: string;
}

export interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  certFile: string;
  keyFile: string;
}

export interface EtcdMemberProcess {
  spec: MemberSpec;
  child: ChildProcess;
  /** Resolves when the process exited. */
  exited: Promise<void>;
  log: string[];
}

export class EtcdCluster {
  readonly members: Array<EtcdMemberProcess | undefined>;

  constructor(
    readonly dir: string,
    readonly tls: ClusterTls,
    readonly specs: MemberSpec[],
    readonly token: string,
    /** More etcd flags for every member (e.g. `--quota-backend-bytes=...` for a benchmark). */
    readonly etcdArgs: readonly string[] = [],
  ) {
    this.members = specs.map(() => undefined);
  }

  get endpoints(): string[] {
    return this.specs.map((s) => `https://127.0.0.1:${s.clientPort}`);
  }

  get initialCluster(): string {
    return this.specs.map((s) => `${s.name}=https://127.0.0.1:${s.peerPort}`).join(',');
  }

  /** Starts member `i` (its data dir as it is: new, existing, or restored). */
  start(i: number): EtcdMemberProcess {
    const s = this.specs[i];
    if (!s) throw new Error(`no member ${i}`);
    const args = [
      `--name=${s.name}`,
      `--data-dir=${s.dataDir}`,
      `--listen-client-urls=https://127.0.0.1:${s.clientPort}`,
      `--advertise-client-urls=https://127.0.0.1:${s.clientPort}`,
      `--listen-peer-urls=https://127.0.0.1:${s.peerPort}`,
      `--initial-advertise-peer-urls=https://127.0.0.1:${s.peerPort}`,
      `--initial-cluster=${this.initialCluster}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${this.token}`,
      `--cert-file=${s.certFile}`,
      `--key-file=${s.keyFile}`,
      `--trusted-ca-file=${this.tls.ca}`,
      '--client-cert-auth=true',
      `--peer-cert-file=${s.certFile}`,
      `--peer-key-file=${s.keyFile}`,
      `--peer-trusted-ca-file=${this.tls.ca}`,
      '--peer-client-cert-auth=true',
      '--heartbeat-interval=100',
      '--election-timeout=1000',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
      ...this.etcdArgs,
    ];
    const child = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    const log: string[] = [];
    child.stderr?.on('data', (d: Buffer) => log.push(d.toString('utf8')));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const m = { spec: s, child, exited, log };
    this.members[i] = m;
    return m;
  }

  /** Sends `signal` to member `i` and waits until it exited. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.members[i];
    if (!m || m.child.exitCode !== null || m.child.signalCode !== null) return;
    m.child.kill(signal);
    await m.exited;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.specs.map((_, i) => this.kill(i, 'SIGTERM')));
  }

  /** etcdctl against the given members (default: all), with the cluster's client certificate. */
  etcdctl(args: string[], endpoints = this.endpoints): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(
      'etcdctl',
      [`--endpoints=${endpoints.join(',')}`, `--cacert=${this.tls.ca}`, `--cert=${this.tls.cert}`, `--key=${this.tls.key}`, ...args],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ETCDCTL_API: '3' },
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** `endpoint status` of each running member: endpoint, member ID, leader, cluster ID (hex). */
  status(endpoints = this.endpoints): Array<{ endpoint: string; memberId: string; leader: string; clusterId: string }> {
    const r = this.etcdctl(['endpoint', 'status', '-w', 'json', '--hex'], endpoints);
    if (r.code !== 0) throw new Error(`etcdctl endpoint status failed: ${r.stderr}`);
    const rows = JSON.parse(r.stdout) as Array<{ Endpoint: string; Status: { header: { cluster_id: string; member_id: string }; leader: string } }>;
    return rows.map((x) => ({ endpoint: x.Endpoint, memberId: x.Status.header.member_id, leader: x.Status.leader, clusterId: x.Status.header.cluster_id }));
  }

  /** Waits until every member in `endpoints` answers and they agree on one leader. */
  async healthy(endpoints = this.endpoints, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const r = this.etcdctl(['endpoint', 'health'], endpoints);
      if (r.code === 0) {
        const st = this.status(endpoints);
        const leaders = new Set(st.map((s) => s.leader));
        if (leaders.size === 1 && !leaders.has('0')) return;
      }
      last = r.stderr;
      if (Date.now() > deadline) throw new Error(`etcd cluster not healthy: ${last}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** The index of the member that leads now. */
  leaderIndex(): number {
    const st = this.status();
    const leader = st[0]?.leader;
    const i = st.findIndex((s) => s.memberId === leader);
    const ep = st[i]?.endpoint;
    return this.endpoints.indexOf(ep ?? '');
  }
}

/** CA, client certificate and one certificate per member (IP 127.0.0.1 only), in `dir` (0600 keys). */
export async function makeClusterTls(dir: string, names: readonly string[]): Promise<{ tls: ClusterTls; members: Array<{ cert: string; key: string }> }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa('test-etcd-ca');
  const write = (name: string, pem: { certPem: string; keyPem: string }): { cert: string; key: string } => {
    const cert = path.join(dir, `${name}.crt`);
    const key = path.join(dir, `${name}.key`);
    writeFileSync(cert, pem.certPem);
    writeFileSync(key, pem.keyPem, { mode: 0o600 });
    return { cert, key };
  };
  write('ca', ca);
  const client = write('client', await issueLeaf(ca, { commonName: 'test-client', usage: 'client', hosts: [] }));
  const members = [];
  for (const n of names) members.push(write(n, await issueLeaf(ca, { commonName: n, usage: 'peer', hosts: ['127.0.0.1'] })));
  return { tls: { ca: path.join(dir, 'ca.crt'), ...client }, members };
}

/** Member specs on fresh ports, data dirs under `dir/<name>` (not created: etcd makes them). */
export async function memberSpecs(dir: string, certs: Array<{ cert: string; key: string }>, names: readonly string[]): Promise<MemberSpec[]> {
  const out: MemberSpec[] = [];
  for (const [i, name] of names.entries()) {
    const c = certs[i];
    if (!c) throw new Error(`no certificate for ${name}`);
    out.push({ name, clientPort: await freePort(), peerPort: await freePort(), dataDir: path.join(dir, name), certFile: c.cert, keyFile: c.key });
  }
  return out;
}

/** A new healthy cluster of `size` members (m1, m2, ...), with `etcdArgs` added to each member's flags. */
export async function startEtcdCluster(size = 3, etcdArgs: readonly string[] = []): Promise<EtcdCluster> {
  const dir = tempDir('etcdsnap-cluster-');
  const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  const { tls, members } = await makeClusterTls(path.join(dir, 'pki'), names);
  const cluster = new EtcdCluster(dir, tls, await memberSpecs(dir, members, names), 'test-cluster', etcdArgs);
  for (let i = 0; i < size; i++) cluster.start(i);
  await cluster.healthy();
  return cluster;
}

/** `etcdsnap agent` against `cluster`, JSON logs, on a fresh supervisor port; not waited for. */
export async function startAgent(
  cluster: EtcdCluster,
  opts: { args?: string[]; env?: Record<string, string>; dataDir?: string; endpoints?: string[] } = {},
): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? path.join(tempDir('etcdsnap-agent-'), 'agent');
  const port = await freePort();
  // the config file `snapshotCli` passes to etcd-snapshot (empty)
  const cfg = path.join(path.dirname(dataDir), `config-${port}.yaml`);
  writeFileSync(cfg, '');
  const args = [
    ...NODE_FLAGS,
    BIN,
    'agent',
    '--config',
    cfg,
    '--log-format',
    'json',
    '--data-dir',
    dataDir,
    '--node-name',
    'agent1',
    '--supervisor-port',
    String(port),
    ...(opts.args ?? []),
  ];
  const env = cleanEnv({
    ETCDCTL_ENDPOINTS: (opts.endpoints ?? cluster.endpoints).join(','),
    ETCDCTL_CACERT: cluster.tls.ca,
    ETCDCTL_CERT: cluster.tls.cert,
    ETCDCTL_KEY: cluster.tls.key,
    ...opts.env,
  });
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new ServerProcess(child, dataDir, { supervisor: port, client: 0, peer: 0 });
}

export const agentReady = (a: ServerProcess, timeoutMs = 60_000): Promise<LogLine> => a.waitFor((l) => l.msg === 'etcdsnap agent ready', timeoutMs);
