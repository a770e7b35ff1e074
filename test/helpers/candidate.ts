/**
 * A candidate of an election (etcd/election.ts) in a process of its own, for tests that kill
 * it (SIGKILL: its lease is no longer kept alive). Arguments: the etcd endpoint, the server's
 * data dir (client certificates), the election key, the candidate's value, the TTL in s.
 * Prints `elected <create revision>` once elected, `lost` when a term is lost.
 */
import { EtcdClient } from '../../src/etcd/client.js';
import { Election } from '../../src/etcd/election.js';
import { tlsPaths } from '../../src/etcd/tls.js';
import { createLogger } from '../../src/log/logger.js';

const [endpoint = '', dataDir = '', key = '', value = '', ttl = '10'] = process.argv.slice(2);
const client = await EtcdClient.connect({ endpoint, tls: tlsPaths(dataDir) });
const election = new Election({
  etcd: client,
  key,
  value,
  ttlSeconds: Number(ttl),
  logger: createLogger({ format: 'json', debug: false, destination: { write: () => undefined } }),
  onElected: (t) => process.stdout.write(`elected ${t.createRevision}\n`),
  onLost: () => process.stdout.write('lost\n'),
});
election.start();
setInterval(() => undefined, 1 << 30);
