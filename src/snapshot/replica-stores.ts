/**
 * The replica stores (S3) of requests, built through store/factory.ts (which loads the S3
 * code only when asked) and reused per settings: at most 5, least recently used closed, as
 * k3s does: a new client per save would leak its connection pool until GC, every 2 seconds
 * on a busy schedule.
 */
import { EtcdsnapError, messageOf } from '../errors.js';
import { openStore, type S3SkipReporter } from '../store/factory.js';
import type { SnapshotStore } from '../store/store.js';
import type { S3Options } from './s3-config.js';

const MAX_CACHED = 5;

export class ReplicaStores {
  /** Promises, so that two requests at once share one store. */
  private readonly stores = new Map<string, Promise<SnapshotStore>>();

  constructor(private readonly onSkip: S3SkipReporter) {}

  /**
   * The store of `o`; with `check`, its bucket must answer first: a request whose S3 cannot
   * be reached is refused with the reason ("failed to initialize S3 client: ...").
   */
  async get(o: S3Options, check = true): Promise<SnapshotStore> {
    try {
      const store = await this.cached(o);
      if (check) await store.probe();
      return store;
    } catch (err) {
      throw new EtcdsnapError(
        err instanceof EtcdsnapError && err.kind === 'config' ? 'config' : 'unavailable',
        `failed to initialize S3 client: ${messageOf(err)}`,
        { cause: err },
      );
    }
  }

  private async cached(o: S3Options): Promise<SnapshotStore> {
    const key = JSON.stringify(o.settings);
    const hit = this.stores.get(key);
    if (hit) {
      this.stores.delete(key);
      this.stores.set(key, hit);
      return hit;
    }
    const store = openStore({ kind: 's3', settings: o.settings, onSkip: this.onSkip });
    this.stores.set(key, store);
    store.catch(() => this.stores.get(key) === store && this.stores.delete(key));
    if (this.stores.size > MAX_CACHED) {
      const [oldestKey, oldest] = this.stores.entries().next().value as [string, Promise<SnapshotStore>];
      this.stores.delete(oldestKey);
      void oldest.then(
        (st) => st.close(),
        () => undefined,
      );
    }
    return store;
  }

  /** Closes every store; only once nothing uses them. */
  async closeAll(): Promise<void> {
    const all = [...this.stores.values()];
    this.stores.clear();
    await Promise.all(
      all.map((p) =>
        p.then(
          (st) => st.close(),
          () => undefined,
        ),
      ),
    );
  }
}
