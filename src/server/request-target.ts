/**
 * Parses an HTTP request target for the supervisor API. Pure; never throws.
 *
 * Contract: only origin-form targets are accepted: a path that starts with exactly one `/`
 * (an optional `?query` after it), at most MAX_TARGET_LENGTH characters, without control
 * characters or backslashes (WHATWG URL parsing reads `\` as `/`, so `/\host` would name a
 * host). Everything else (`*`, absolute-form `http://...`, `//host:port`, a port out of
 * range, bad percent-encoding in a host) gives `undefined`, which the API answers with 400.
 * The result's `path` is the parsed (dot-segment-normalised) pathname.
 */

/** Longer targets are refused (Node's header limit of 16 KiB bounds them anyway). */
export const MAX_TARGET_LENGTH = 8 * 1024;

const BASE = 'https://supervisor.invalid';

export interface RequestTarget {
  path: string;
  query: URLSearchParams;
}

export function parseRequestTarget(raw: string | undefined): RequestTarget | undefined {
  if (raw === undefined || raw.length === 0 || raw.length > MAX_TARGET_LENGTH) return undefined;
  if (raw[0] !== '/' || raw[1] === '/') return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters and spaces are refused in a target
  if (/[\\\u0000-\u0020\u007f]/.test(raw)) return undefined;
  let url: URL;
  try {
    url = new URL(raw, BASE);
  } catch {
    return undefined;
  }
  // a relative path cannot change the origin; checked anyway so a parser quirk cannot name a host
  if (url.origin !== BASE) return undefined;
  return { path: url.pathname, query: url.searchParams };
}
