// The spec's error catalog («Error codes»): one place that maps an errorName to its HTTP status.
// Every non-200 reply the service sends, from the TLS layer up, is built from this table.
import { HsmError } from './hsm/errors.js';

export const ERRORS = {
  ValidationException: 400,
  InvalidStateException: 400,
  InvalidCiphertextException: 400,
  InvalidKeyUsageException: 400,
  AuthenticationFailedException: 401,
  AccessDeniedException: 403,
  KeyNotFoundException: 404,
  InvalidUriPathException: 404,
  MethodNotAllowed: 405, // the spec has no errorName for 405 (T5); we send this one
  ThrottlingException: 429,
  InternalException: 500,
  UnsupportedOperationException: 501,
  DependencyTimeoutException: 503,
} as const;

export type ErrorName = keyof typeof ERRORS;

/** Errors KMS may retry (for metrics: XksProxyErrors retryable vs non-retryable). */
export const RETRYABLE: ReadonlySet<ErrorName> = new Set<ErrorName>([
  'ThrottlingException',
  'DependencyTimeoutException',
  'InternalException',
]);

/**
 * An error that becomes a spec reply. `message` goes to KMS (and the calling account's CloudWatch
 * Logs), so it must never carry secrets or internal detail; `detail` is for our own log only.
 */
export class XksError extends Error {
  readonly errorName: ErrorName;
  readonly status: number;
  readonly detail: string | undefined;
  constructor(errorName: ErrorName, message: string, detail?: string) {
    super(sanitizeMessage(message));
    this.name = 'XksError';
    this.errorName = errorName;
    this.status = ERRORS[errorName];
    this.detail = detail;
  }
}

/** errorMessage: printable ASCII 0x20-0x7E only, under 512 characters (spec «Error codes»). */
export function sanitizeMessage(message: string): string {
  return message.replace(/[^\x20-\x7e]/g, '?').slice(0, 511);
}

export function errorBody(name: ErrorName, message: string): string {
  return JSON.stringify({ errorName: name, errorMessage: sanitizeMessage(message) });
}

/**
 * The reply for anything thrown: an XksError as it is, the HSM cluster's HsmError under its own
 * errorName; anything else is an internal failure whose text stays in our log.
 */
export function toXksError(err: unknown): XksError {
  if (err instanceof XksError) return err;
  if (err instanceof HsmError) return new XksError(err.errorName, err.message, err.detail);
  const detail = err instanceof Error ? err.message : String(err);
  return new XksError('InternalException', 'Internal error', detail);
}
