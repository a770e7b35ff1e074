/**
 * k3s's compressed snapshot format: a zip with one deflated entry named like the snapshot
 * without `.zip`. Built while streaming by src/codec/zip-writer.ts (parallel deflate off the
 * main thread, ZIP64), never from a temp file. Kept so the import sites stay as they are.
 */
export { zipSingleEntry } from '../codec/zip-writer.js';
