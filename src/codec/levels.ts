/**
 * Default compression levels, chosen by measurement with `npm run bench:codecs`
 * (2026-11-30, 2 cores AMD EPYC, Node 20.20.2, on a shared host with load average 5-6, so
 * each figure is the best of 2 runs and a second column gives MiB per CPU-second, which the
 * load does not change). Two data sets:
 * - G: 128 MiB generated like an etcd snapshot of a cluster (4 KiB pages of `/registry/...`
 *   keys with JSON objects, protobuf-like values, Secrets with random base64, free pages);
 * - J: 60 MiB of real JSON text (package.json files: repeated field names, like CRDs and
 *   managedFields, which etcd stores as JSON).
 *
 * | compressor (wall MiB/s, MiB/CPU-s, size)  | G                 | J                 |
 * |-------------------------------------------|-------------------|-------------------|
 * | `zip -6` CLI (reference)                  | 40, 42, 23.9 %    | 30, 30, 22.7 %    |
 * | zlib -6 one stream (yazl, before)         | 50, 67, 23.3 %    | 32, 35, 22.7 %    |
 * | ParallelDeflate -1, 1 MiB × 2 / × 4       | 107/105, 104, 26.1 % | 96/95, 92, 27.3 % |
 * | ParallelDeflate -3, 1 MiB × 2 / × 4       | 119/112, 109, 24.5 % | 71/78, 66, 25.6 % |
 * | ParallelDeflate -4, 1 MiB × 2 / × 4       | 81/80, 79, 24.2 %    | 71/84, 73, 23.8 % |
 * | ParallelDeflate -6, 1 MiB × 2 / × 4       | 58/65, 68, 23.3 %    | 41/76, 39, 22.7 % |
 * | zipSingleEntry -3 / -4 / -6 to disk       | 100 / 77 / 65     | 113 / 110 / 70    |
 * | `zstd -1 -T0` CLI                         | 261, 245, 23.8 %  | 337, 181, 24.2 %  |
 * | `zstd -3 -T0` CLI                         | 119, 120, 23.9 %  | 318, 168, 18.8 %  |
 *
 * Deflate: level 4 is the lowest whose size stays within ~5 % of `zip -6` on both sets
 * (+1.3 % on G, +4.8 % on J; level 3 is +12.8 % on J), and it costs 1.9 to 2.4× less CPU
 * per MiB than `zip -6` before the second core is counted: 1.9× (G) and 3.7× (J) the wall
 * speed of `zip -6` even on this loaded host (the second core is mostly taken), more on an
 * idle one. Level 3 was 1.3× faster than 4 on G only, and not faster on J.
 * zstd: level 3 (zstd's own default): 22 % smaller than level 1 on J for 1.1× (J) to 2× (G)
 * the CPU, and still 1.5× (G) to 2.9× (J) the speed of our deflate at level 4.
 */

/** Deflate level of the zip (k3s format) entry. */
export const ZIP_DEFLATE_LEVEL = 4;
/** Deflate level of gzip output (the same trade-off as zip). */
export const GZIP_DEFLATE_LEVEL = 4;
/** zstd level. */
export const ZSTD_LEVEL = 3;
