/**
 * The S3 snapshot store's public surface; the code is in store/s3/ (one job per file, the
 * contract in store/s3/store.ts). Only store/s3/ imports `@aws-sdk/*` and `https-proxy-agent`.
 * Import it (or store/factory.ts) lazily where S3 is optional: it loads the SDK.
 */
export { S3Store } from './s3/store.js';
export { S3SnapshotStore } from './s3/snapshot-store.js';
export type { S3Settings, ProxyEnvironment } from './s3/settings.js';
export type { S3ObjectInfo, S3ListOptions } from './s3/list.js';
export { DEFAULT_PART_SIZE, UPLOAD_BUFFERS, type S3UploadOptions } from './s3/upload.js';
export { MAX_SIDECAR_BYTES, abortStaleUploads, deleteFromS3, listS3Records, pruneS3, putSidecar, type S3Skip, type S3SkipReporter } from './s3/records.js';
