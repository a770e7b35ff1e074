// Mutation testing of the pure and near-pure core (issue 19): `npm run mutate`.
// Not part of `npm test`. See docs/mutation-testing.md for the run time, the scores and
// the surviving mutants with the reason each is left.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  plugins: ['@stryker-mutator/tap-runner'],
  tap: {
    // fast unit test files only: none of them starts etcd, a server or an S3 stand-in
    testFiles: [
      // the fastest first: a static mutant (e.g. in the option schema's arrays) runs every
      // file until one fails, and the flag reference catches most of those in half a second
      'test/flag-reference.test.ts',
      'test/schema-api.test.ts',
      'test/parts.test.ts',
      'test/naming-records.test.ts',
      'test/encoding-unit.test.ts',
      'test/verify.test.ts',
      'test/snapshot-decoder.test.ts',
      'test/snapshot-unit.test.ts',
      'test/config-values.test.ts',
      'test/config.test.ts',
      'test/bootstrap-seal.test.ts',
    ],
    // each test file runs as `node -r <stryker hook> --import tsx <file>` and reports TAP
    nodeArgs: ['--import', 'tsx'],
    forceBail: true,
  },
  mutate: [
    'src/model/naming.ts',
    'src/model/encoding.ts',
    'src/model/records.ts',
    'src/retention/policy.ts',
    'src/snapshot/verify.ts',
    'src/store/parts.ts',
    // SnapshotBlobDecoder and its error helper only (the rest is the HTTP/2 connection)
    'src/etcd/snapshot-stream.ts:27-144',
    'src/config/schema.ts',
    'src/config/spec.ts',
    'src/config/values.ts',
    'src/config/checks.ts',
    'src/config/resolve.ts',
    'src/etcd/token.ts',
    // the sealing: kdfAcceptable, keyOf, sealBootstrap, sealedCaHash, needsReseal, openBootstrap
    // (not bootstrapDataFeature, which talks to etcd)
    'src/server/bootstrap-data.ts:76-188',
  ],
  // the tap runner reports coverage per test file: a mutant runs only the files that reach it
  coverageAnalysis: 'perTest',
  concurrency: 2,
  timeoutMS: 15_000,
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: false },
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
