/**
 * The S3 snapshot store's public surface; the code is in store/s3/ (one job per file, the
 * contract in store/s3/store.ts). Only store/s3/ imports `@aws-sdk/*` and `https-proxy-agent`.
 */
export { S3Store } from './s3/store.js';
export type { S3Settings, ProxyEnvironment } from './s3/settings.js';
export type { S3ObjectInfo, S3ListOptions } from './s3/list.js';
export { DEFAULT_PART_SIZE, UPLOAD_BUFFERS, type S3UploadOptions } from './s3/upload.js';
