/**
 * Translation of AWS SDK and network errors into `EtcdsnapError`s, at the edge of the store.
 *
 * Contract: `translate()` maps an error to `not-found` (NoSuchKey, NoSuchBucket, 404), `auth`
 * (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied, 401/403, no credentials found),
 * `unavailable` (network errors, timeouts, 5xx, 429; retryable), `conflict` (409), `config`
 * (TLS trust failures, no TLS, wrong region/endpoint); anything else is `unavailable`, not
 * retryable. Messages name the operation, the bucket/key and the endpoint, plus the S3 error
 * code and HTTP status; SDK messages pass through `scrubSecrets()`. The `cause` is a
 * sanitised copy (name, code, status, scrubbed message), never the SDK object itself. An
 * `EtcdsnapError` is returned as it is. No AWS SDK import: errors are read by shape.
 */
import { EtcdsnapError, errnoCode, messageOf } from '../../errors.js';
import { scrubSecrets } from '../../log/logger.js';

interface SdkErrorShape {
  name: string;
  message: string;
  code?: string;
  status?: number;
}

function sdkErrorShape(err: unknown): SdkErrorShape {
  const o = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const meta = typeof o.$metadata === 'object' && o.$metadata !== null ? (o.$metadata as Record<string, unknown>) : {};
  const status = typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
  // Errors without a body (HEAD) come back as "Unknown"/"UnknownError"; the status says more.
  const rawName = typeof o.name === 'string' ? o.name : 'Error';
  const name = rawName === 'Unknown' || rawName === 'UnknownError' ? 'Error' : rawName;
  const code = typeof o.Code === 'string' ? o.Code : errnoCode(err);
  return { name, message: scrubSecrets(messageOf(err)), code, status };
}

const NOT_FOUND = new Set(['NoSuchKey', 'NoSuchBucket', 'NotFound', 'NoSuchUpload']);
const AUTH = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'Forbidden',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidSecurity',
  'CredentialsProviderError',
  'AccountProblem',
]);
const CONFIG = new Set([
  'AuthorizationHeaderMalformed',
  'PermanentRedirect',
  'InvalidBucketName',
  'IllegalLocationConstraintException',
  'InvalidRegion',
  'InvalidArgument',
]);
const TLS_TRUST = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** A plain Error with the SDK error's identifying fields, safe to log. */
function sanitisedCause(s: SdkErrorShape): Error {
  return Object.assign(new Error(s.message), { name: s.name, ...(s.code ? { code: s.code } : {}), ...(s.status ? { httpStatusCode: s.status } : {}) });
}

/**
 * Turns an SDK/network error into an EtcdsnapError. `what` names the operation and object,
 * e.g. `GetObject s3://b/k`; the endpoint is appended. `deadline.timedOut` marks an
 * operation our own deadline cut.
 */
export function translate(err: unknown, what: string, endpoint: string, deadline?: { timedOut: boolean; ms: number }): EtcdsnapError {
  if (err instanceof EtcdsnapError) return err;
  const s = sdkErrorShape(err);
  const label = [s.name !== 'Error' ? s.name : s.code, s.status !== undefined ? `HTTP ${s.status}` : undefined].filter(Boolean).join(', ');
  const detail = s.message !== '' && s.message !== s.name && s.message !== 'UnknownError' ? `: ${s.message}` : '';
  const base = `${what} at ${endpoint} failed${label ? ` (${label})` : ''}${detail}`;
  const cause = sanitisedCause(s);
  const status = s.status ?? 0;
  if (deadline?.timedOut || s.name === 'TimeoutError' || s.code === 'ETIMEDOUT' || s.code === 'ESOCKETTIMEDOUT') {
    return new EtcdsnapError('unavailable', `${what} at ${endpoint} timed out${deadline?.timedOut ? ` after ${deadline.ms} ms` : ''}${detail}`, { cause });
  }
  if (NOT_FOUND.has(s.name) || status === 404) return new EtcdsnapError('not-found', base, { cause });
  if (AUTH.has(s.name) || status === 401 || status === 403) {
    return new EtcdsnapError('auth', `${base}; check the S3 access key, secret key and session token`, { cause });
  }
  if ((s.code !== undefined && TLS_TRUST.has(s.code)) || /certificate|self[- ]signed/i.test(s.message)) {
    return new EtcdsnapError('config', `${base}; the server certificate is not trusted: set --etcd-s3-endpoint-ca or --etcd-s3-skip-ssl-verify`, { cause });
  }
  if (/wrong version number|packet length too long/i.test(s.message)) {
    return new EtcdsnapError('config', `${base}; the endpoint does not speak TLS: use --etcd-s3-insecure for http`, { cause });
  }
  if (CONFIG.has(s.name) || status === 301 || status === 307) return new EtcdsnapError('config', base, { cause });
  if (status === 409) return new EtcdsnapError('conflict', base, { cause, retryable: true });
  if (status >= 500 || status === 429 || s.name === 'SlowDown' || (s.code !== undefined && NETWORK.has(s.code)) || status === 0) {
    return new EtcdsnapError('unavailable', base, { cause });
  }
  return new EtcdsnapError('unavailable', base, { cause, retryable: false });
}

/** The reason of an aborted signal, or a generic 'aborted' error. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

/** The `unavailable`, not retryable error of an operation the caller aborted. */
export function abortedError(what: string, signal: AbortSignal | undefined, note = ''): EtcdsnapError {
  const reason = signal ? abortReason(signal) : undefined;
  return new EtcdsnapError('unavailable', `${what} aborted: ${scrubSecrets(messageOf(reason))}${note}`, { retryable: false });
}
