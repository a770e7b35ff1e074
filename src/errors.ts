/**
 * The project's typed errors. Every module throws one of these (or lets an unexpected
 * Error escape); only `cli/exit.ts` turns them into exit codes and one-line messages.
 * Messages are written for the user: they say what was wrong and what to do, and never
 * contain a secret.
 */
export type ErrorKind =
  | 'config' // bad flag, config key or environment value
  | 'usage' // wrong combination of flags or arguments
  | 'environment' // the machine is not ready: binary missing, port in use, dir not writable
  | 'auth' // missing or wrong token
  | 'not-found'
  | 'conflict' // another operation holds the resource
  | 'integrity' // data failed a hash or format check
  | 'unavailable'; // a dependency (etcd, S3) did not answer; usually retryable

export class EtcdsnapError extends Error {
  readonly kind: ErrorKind;
  /** True when retrying the same operation later may succeed. */
  readonly retryable: boolean;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EtcdsnapError';
    this.kind = kind;
    this.retryable = options?.retryable ?? kind === 'unavailable';
  }
}

export const configError = (message: string, cause?: unknown): EtcdsnapError => new EtcdsnapError('config', message, { cause });
export const usageError = (message: string): EtcdsnapError => new EtcdsnapError('usage', message);
export const environmentError = (message: string, cause?: unknown): EtcdsnapError => new EtcdsnapError('environment', message, { cause });

/** The message of any thrown value, without a stack. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The Node.js system error code (`ENOENT`, `EADDRINUSE`, ...) of a thrown value, if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
