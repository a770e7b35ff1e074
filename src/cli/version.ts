/**
 * What `etcdsnap --version` prints: `etcdsnap <version> (commit <commit>)`. The version has one
 * source, package.json's `version` (npm ships package.json in every install, and a checkout
 * has it); the commit is read from `dist/build-info.json`, which `npm run build` writes
 * (scripts/build-info.ts: `git rev-parse --short HEAD`, `-dirty` when tracked files differ
 * from it, `unknown` outside git). Running from the sources (tsx), or when the file is
 * missing or unreadable, the commit is `unknown`: the version line never fails.
 */
import { readFileSync } from 'node:fs';

/** Reads a JSON object from `url`, or undefined when it is missing or not an object. */
function readJson(url: URL): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(readFileSync(url, 'utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface BuildInfo {
  version: string;
  commit: string;
}

/** The version (package.json, two folders up from dist/cli/ or src/cli/) and commit (../build-info.json). */
export function buildInfo(): BuildInfo {
  const pkg = readJson(new URL('../../package.json', import.meta.url));
  const built = readJson(new URL('../build-info.json', import.meta.url));
  return {
    version: typeof pkg?.version === 'string' ? pkg.version : 'unknown',
    commit: typeof built?.commit === 'string' && built.commit !== '' ? built.commit : 'unknown',
  };
}

/** The line `etcdsnap --version` prints. */
export const versionLine = (b: BuildInfo = buildInfo()): string => `etcdsnap ${b.version} (commit ${b.commit})`;
