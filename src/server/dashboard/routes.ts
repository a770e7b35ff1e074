/**
 * The web dashboard's routes on the supervisor API (docs/dashboard.md).
 *
 * Contract:
 * - `GET /`, `/ui/app.js`, `/ui/app.css`: public (the page, its script and style; no data).
 * - `POST /ui/login` (`auth: 'login'`, body `{"token"}`: the secret or the full token) starts
 *   a session (cookie set by the API) and answers its CSRF token. Every other `/ui/` route
 *   needs the session (`auth: 'session'`, api.ts/session.ts): `GET /ui/state` (state.ts
 *   `DashboardState`), `GET /ui/progress` (the running save), `GET /ui/download?name=&store=`
 *   (a snapshot as stored, streamed: `local` from the snapshot folder, `s3` from the
 *   server's bucket), `POST /ui/save` (202: an on-demand save with the server's settings
 *   and S3, run in the background; 409 while a save runs), `POST /ui/delete` (`{"name"}`: the
 *   snapshot and its S3 copy, as `etcd-snapshot delete`), `POST /ui/logout`.
 * - These routes never reach the token routes' data (bootstrap data, inspection, metrics).
 */
import type { Readable } from 'node:stream';
import { EtcdsnapError, messageOf } from '../../errors.js';
import { assertSafeName } from '../../model/naming.js';
import type { SnapshotService } from '../../snapshot/service.js';
import type { S3Options } from '../../snapshot/s3-config.js';
import type { SnapshotEncoding } from '../../model/encoding.js';
import { openStore } from '../../store/factory.js';
import type { HostContext } from '../feature.js';
import { Activity, type DashboardState, lastFailure, rowOf } from './state.js';
import { PAGE_CSS, PAGE_HTML } from './page.js';
import { APP_JS } from './app.js';

export interface DashboardOptions {
  service: SnapshotService;
  /** The server's S3 settings (used to list, save, delete and download like scheduled saves). */
  s3?: S3Options;
  /** Prefix and encoding of a save started from the dashboard (as `etcd-snapshot save`'s defaults). */
  savePrefix: string;
  encoding: SnapshotEncoding;
  schedule: { enabled: boolean; spec: string; retention: number; retentionPolicy?: string };
  /** The scheduler's next run (null: none; undefined: no scheduler). */
  nextRun(): Date | null | undefined;
}

/** Registers the dashboard's routes; answers the activity (for scheduled saves' failures). */
export function addDashboardRoutes(ctx: HostContext, o: DashboardOptions): Activity {
  const activity = new Activity();
  const replicas = o.s3 ? [o.s3] : [];
  const asset = (path: string, body: string, contentType: string): void =>
    ctx.addRoute({ method: 'GET', path, auth: 'public', handle: () => ({ status: 200, body, contentType }) });
  asset('/', PAGE_HTML, 'text/html; charset=utf-8');
  asset('/ui/app.js', APP_JS, 'text/javascript; charset=utf-8');
  asset('/ui/app.css', PAGE_CSS, 'text/css; charset=utf-8');

  ctx.addRoute({ method: 'POST', path: '/ui/login', auth: 'login', handle: (req) => ({ status: 200, body: { csrf: req.session?.csrf } }) });
  ctx.addRoute({
    method: 'POST',
    path: '/ui/logout',
    auth: 'session',
    handle: (req) => {
      req.session?.end();
      return { status: 200, body: { loggedOut: true } };
    },
  });

  ctx.addRoute({
    method: 'GET',
    path: '/ui/state',
    auth: 'session',
    handle: async (req) => {
      const listed = await o.service.list(undefined, replicas, true); // with the S3 records: node, encryption (as `ls -o json`)
      const snapshots = listed.items.map(rowOf);
      const next = o.nextRun();
      const failure = lastFailure(snapshots, activity.lastFailure);
      const saving = o.service.saveProgress();
      const body: DashboardState = {
        node: o.service.settings.nodeName,
        csrf: req.session?.csrf ?? '',
        snapshots,
        ...(listed.s3Error !== undefined ? { s3Error: listed.s3Error } : {}),
        schedule: {
          ...o.schedule,
          ...(next ? { nextRun: next.toISOString() } : {}),
          ...(o.s3 ? { s3Retention: o.s3.retention, s3: `s3://${o.s3.settings.bucket}/${o.s3.settings.folder}` } : {}),
        },
        ...(saving ? { saving } : {}),
        ...(failure ? { lastFailure: failure } : {}),
        ...(activity.lastSave ? { lastSave: activity.lastSave } : {}),
      };
      return { status: 200, body };
    },
  });

  ctx.addRoute({
    method: 'GET',
    path: '/ui/progress',
    auth: 'session',
    handle: () => {
      const progress = o.service.saveProgress();
      return { status: 200, body: { ...(progress ? { saving: progress } : {}), ...(activity.lastSave ? { lastSave: activity.lastSave } : {}) } };
    },
  });

  ctx.addRoute({
    method: 'POST',
    path: '/ui/save',
    auth: 'session',
    handle: () => {
      if (o.service.busy || activity.lastSave?.running === true) throw new EtcdsnapError('conflict', 'snapshot save already in progress');
      const save = { startedAt: new Date().toISOString(), running: true };
      activity.lastSave = save;
      o.service.save({ prefix: o.savePrefix, encoding: o.encoding, retention: 0, scheduled: false, replicas }).then(
        (r) => {
          const name = r.created[0]?.name;
          activity.lastSave = { ...save, running: false, ...(name !== undefined ? { name } : {}), ...(r.s3Error !== undefined ? { s3Error: r.s3Error } : {}) };
        },
        (err: unknown) => {
          activity.lastSave = { ...save, running: false, error: messageOf(err) };
          activity.noteFailure('save from the dashboard', messageOf(err));
        },
      );
      return { status: 202, body: { started: save.startedAt } };
    },
  });

  ctx.addRoute({
    method: 'POST',
    path: '/ui/delete',
    auth: 'session',
    handle: async (req) => {
      const name = assertSafeName(req.body.name);
      const r = await o.service.delete([name], undefined, replicas);
      if (r.deleted.length === 0) throw new EtcdsnapError('not-found', `snapshot ${name} not found`);
      return { status: 200, body: r };
    },
  });

  ctx.addRoute({
    method: 'GET',
    path: '/ui/download',
    auth: 'session',
    handle: async (req) => {
      const name = assertSafeName(req.query.get('name') ?? '');
      const where = req.query.get('store') ?? 'local';
      if (where !== 'local' && where !== 's3') throw new EtcdsnapError('usage', 'store must be local or s3');
      const s3 = o.s3;
      if (where === 's3' && !s3) throw new EtcdsnapError('usage', 'this server has no S3 settings (--etcd-s3)');
      const store = where === 'local' || !s3 ? await o.service.folder() : await openStore({ kind: 's3', settings: s3.settings });
      let stream: Readable;
      let size: number | undefined;
      try {
        const st = await store.stat(name);
        if (!st) throw new EtcdsnapError('not-found', `snapshot ${name} not found in ${where === 'local' ? 'the snapshot folder' : 'S3'}`);
        size = st.size;
        stream = await store.openRead(name, req.signal);
      } catch (err) {
        store.close();
        throw err;
      }
      stream.once('close', () => store.close());
      return { status: 200, download: { fileName: name, size, stream } };
    },
  });
  return activity;
}
