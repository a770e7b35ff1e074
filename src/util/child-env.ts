/**
 * The environment handed to the child processes we start (etcd, etcdutl/etcdctl): built
 * from an allow-list, never inherited whole. Our own environment holds secrets
 * (`ETCDSNAP_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, proxy URLs with
 * passwords...) that a child has no use for and that would sit in `/proc/<pid>/environ`
 * for as long as it runs. Pure: no I/O, `source` is not changed.
 *
 * Kept: PATH, HOME, LANG, LC_*, TZ, TMPDIR (when set); the Go runtime's tuning knobs
 * (GOMAXPROCS, GOMEMLIMIT, GOGC, GODEBUG, GOTRACEBACK: etcd is a Go program and operators
 * tune it with them); and the user's own variables with the given prefixes (`ETCD_` for
 * etcd, which reads them as flags; `ETCD_` and `ETCDCTL_` for its tools). Everything
 * else, ETCDSNAP_* and AWS_* included, is dropped. `extra` is added last.
 */

/** Names passed through as they are, when set. */
const BASE_NAMES: readonly string[] = ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR', 'GOMAXPROCS', 'GOMEMLIMIT', 'GOGC', 'GODEBUG', 'GOTRACEBACK'];

/** Prefixes of user variables that etcd itself reads. */
export const ETCD_PREFIXES: readonly string[] = ['ETCD_'];
/** Prefixes of user variables that etcdctl/etcdutl read. */
export const ETCD_TOOL_PREFIXES: readonly string[] = ['ETCD_', 'ETCDCTL_'];

/** Prefixes this module never passes on, whatever prefixes a caller asks for. */
const NEVER: readonly string[] = ['ETCDSNAP_', 'AWS_'];

/**
 * A minimal environment for a child: the allow-listed variables of `source`, those whose
 * name starts with one of `prefixes`, then `extra`.
 */
export function childEnv(source: NodeJS.ProcessEnv, prefixes: readonly string[], extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || NEVER.some((n) => name.startsWith(n))) continue;
    if (BASE_NAMES.includes(name) || name.startsWith('LC_') || prefixes.some((pre) => name.startsWith(pre))) env[name] = value;
  }
  return { ...env, ...extra };
}
