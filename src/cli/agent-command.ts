/**
 * `etcdsnap agent`: resolves AGENT_OPTIONS (config file /etc/etcdsnap/agent.yaml by default),
 * finds the etcd connection (flags, ETCDCTL_* variables, kubeadm's files), builds the logger
 * and runs the agent (server/agent.ts) with the server's snapshot feature until a signal;
 * with scheduled snapshots on, the election of the agent group (server/agent-election.ts)
 * decides which agent takes them.
 */
import { Command } from 'commander';
import { addOptions, resolveValues } from '../config/resolve.js';
import { AGENT_OPTIONS, DEFAULT_AGENT_CONFIG_FILE } from '../config/schema.js';
import { daemonNotifier, keepRunningOnBugs, stopSignal } from './daemon.js';

export function agentCommand(): Command {
  const cmd = new Command('agent').description(
    'Take scheduled and on-demand snapshots of an etcd cluster that etcdsnap does not run (kubeadm, external etcd), with the API etcd-snapshot uses',
  );
  addOptions(cmd, AGENT_OPTIONS);
  cmd.action(async () => {
    const warnings: string[] = [];
    const [{ createLogger }, { buildAgentConfig, resolveEtcdConnection }, { proxyEnvironment, s3OptionsFromValues }] = await Promise.all([
      import('../log/logger.js'),
      import('../server/agent-config.js'),
      import('../snapshot/s3-config.js'),
    ]);
    const values = await resolveValues(cmd, AGENT_OPTIONS, { env: process.env, warn: (m) => warnings.push(m), defaultConfigFile: DEFAULT_AGENT_CONFIG_FILE });
    const cfg = buildAgentConfig(values, await resolveEtcdConnection(values));
    const proxyEnv = proxyEnvironment(process.env);
    const s3 = s3OptionsFromValues(values, 'etcd-', proxyEnv);
    const logger = createLogger({ format: cfg.logFormat, debug: cfg.debug });
    for (const w of warnings) logger.warn(w);
    const [
      { runAgent },
      { snapshotFeature, snapshotSettingsOf },
      { resolveEncoding },
      { AgentLeadership },
      { Upkeep, upkeepSettingsOf },
      { quotaBackendBytes },
      { EtcdClient },
    ] = await Promise.all([
      import('../server/agent.js'),
      import('../server/snapshots.js'),
      import('../snapshot/encode.js'),
      import('../server/agent-election.js'),
      import('../server/upkeep.js'),
      import('../server/metrics.js'),
      import('../etcd/client.js'),
    ]);
    // etcd upkeep: the members reached through --endpoints, with etcdctl's TLS files; the quota of --etcd-quota-backend-bytes
    const upkeep = new Upkeep({
      ...upkeepSettingsOf(values),
      quotaBytes: quotaBackendBytes(cfg.etcdArgs),
      endpointsOf: () => cfg.etcd.endpoints,
      connect: (endpoint) =>
        EtcdClient.connect({
          endpoint,
          tls: { etcdCa: cfg.etcd.cacert, clientCert: cfg.etcd.cert, clientKey: cfg.etcd.key },
          serverName: new URL(endpoint).hostname.replace(/^\[|\]$/g, ''),
        }),
    });
    // scheduled snapshots: the agents of a group elect the one that takes them
    const leadership = cfg.snapshots.disabled
      ? undefined
      : new AgentLeadership({
          group: cfg.election.name,
          nodeName: cfg.nodeName,
          ttlSeconds: cfg.election.ttlSeconds,
          schedule: cfg.snapshots.schedule,
          logger,
        });
    const encoding = await resolveEncoding(cfg.snapshots.encodingInput);
    keepRunningOnBugs(logger);
    await runAgent(
      cfg,
      logger,
      stopSignal(logger),
      [
        upkeep.feature(),
        snapshotFeature({
          disabled: cfg.snapshots.disabled,
          schedule: cfg.snapshots.schedule,
          settings: snapshotSettingsOf(cfg.snapshots, encoding, cfg.nodeName),
          ...(s3 ? { s3 } : {}),
          proxyEnv,
          ...(leadership ? { leadership } : {}),
          wrapSource: (source) => upkeep.guard.wrap(source),
          attach: upkeep.attach,
        }),
        ...(leadership ? [leadership.feature()] : []),
      ],
      daemonNotifier(process.env, logger),
    );
  });
  return cmd;
}
