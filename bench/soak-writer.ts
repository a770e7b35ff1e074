/** The soak's writer process: puts keys into etcd without pause until killed. */
import { EtcdClient } from '../src/etcd/client.js';
import { tlsPaths } from '../src/etcd/tls.js';

const [dataDir, port] = process.argv.slice(2);
const client = await EtcdClient.connect({ endpoint: `https://127.0.0.1:${port}`, tls: tlsPaths(dataDir ?? '') });
const value = Buffer.alloc(4096, 'x');
let i = 0;
for (;;) {
  try {
    await client.kv
      .put(`soak/${i % 5000}`)
      .value(value)
      .exec();
    i++;
  } catch {
    await new Promise((r) => setTimeout(r, 200));
  }
}
