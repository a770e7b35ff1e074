/**
 * Import rules for src/ (`npm run lint:layers`, also run by scripts/test.sh).
 * ARCHITECTURE.md ("Import direction") explains them.
 *
 * Layers, bottom to top; a file may import its own layer and the layers below it:
 *   0  src/model/, src/errors.ts   the shared vocabulary: names, records, errors (pure)
 *   1  src/util/, src/log/, src/config/
 *   2  src/etcd/, src/store/, src/retention/, src/inspect/, src/codec/
 *   3  src/snapshot/, src/changelog/
 *   4  src/server/
 *   5  src/cli/
 * Type-only imports count (tsPreCompilationDeps), so a type cannot point upward either.
 * This file is CommonJS (.cjs) because package.json has "type": "module".
 */

/** @param {string} name  @param {string} from  @param {string[]} higher  @returns {import('dependency-cruiser').IForbiddenRuleType} */
function layer(name, from, higher) {
  return {
    name: `layer-${name}`,
    comment: `${name} imports only from its own layer and the layers below it (ARCHITECTURE.md, "Import direction")`,
    severity: 'error',
    from: { path: from },
    to: { path: higher },
  };
}

const L0 = ['^src/model/', '^src/errors\\.ts$'];
const L1 = ['^src/util/', '^src/log/', '^src/config/'];
const L2 = ['^src/etcd/', '^src/store/', '^src/retention/', '^src/inspect/', '^src/codec/'];
const L3 = ['^src/snapshot/', '^src/changelog/'];
const L4 = ['^src/server/'];
const L5 = ['^src/cli/'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import cycles between files (type-only imports included)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    layer('model', L0, [...L1, ...L2, ...L3, ...L4, ...L5]),
    layer('util-log-config', L1, [...L2, ...L3, ...L4, ...L5]),
    layer('etcd-store-retention', L2, [...L3, ...L4, ...L5]),
    layer('snapshot-changelog', L3, [...L4, ...L5]),
    layer('server', L4, L5),
    {
      name: 's3-sdk-only-in-store-s3',
      comment: 'only src/store/s3/ imports the AWS SDK and the proxy agent (type-only imports included)',
      severity: 'error',
      from: { pathNot: '^src/store/s3/' },
      to: { path: '^node_modules/(@aws-sdk/|https-proxy-agent/)' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that resolves to nothing is a typo or a missing package',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: ['^src/', '^node_modules/'],
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
