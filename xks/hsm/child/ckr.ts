// The one catalog of PKCS#11 return codes: which CKR_* names mean which failure class, and the
// names of the numeric codes pkcs11js reports. The classes decide retry, session reset, module
// re-initialization or an answer to KMS (see the failure handling in docs/architecture.md).
import pkcs11js from 'pkcs11js';
import type { FailureClass } from '../protocol.js';

const SESSION_ERRORS = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_USER_NOT_LOGGED_IN',
  // A stale cached key handle or a session left mid-operation: a fresh session fixes both.
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_OPERATION_ACTIVE',
]);
const DEVICE_ERRORS = new Set([
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_HOST_MEMORY',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
]);
// On decrypt, modules report a GCM tag mismatch in different ways; SoftHSM2 says CKR_GENERAL_ERROR.
const DECRYPT_ANSWERS = new Set([
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_MECHANISM_PARAM_INVALID',
]);
const KEY_USAGE_ERRORS = new Set(['CKR_KEY_FUNCTION_NOT_PERMITTED', 'CKR_KEY_TYPE_INCONSISTENT', 'CKR_MECHANISM_INVALID']);
const LOGIN_ERRORS = new Set(['CKR_PIN_INCORRECT', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE']);

export type Operation = 'encrypt' | 'decrypt' | 'other';

export function classify(ckr: string, op: Operation): FailureClass {
  if (op === 'decrypt' && DECRYPT_ANSWERS.has(ckr)) return 'invalid-ciphertext';
  if (SESSION_ERRORS.has(ckr)) return 'session';
  if (DEVICE_ERRORS.has(ckr)) return 'device';
  if (KEY_USAGE_ERRORS.has(ckr)) return 'key-usage';
  if (LOGIN_ERRORS.has(ckr)) return 'login';
  return 'internal';
}

function reverseMap(prefix: string): Map<number, string> {
  const map = new Map<number, string>();
  for (const [name, value] of Object.entries(pkcs11js)) {
    if (name.startsWith(prefix) && typeof value === 'number' && !map.has(value)) map.set(value, name);
  }
  return map;
}
const CKR_NAMES = reverseMap('CKR_');
// PKCS#11 3.0 codes pkcs11js does not name (it reports them as CKR_VENDOR_DEFINED).
CKR_NAMES.set(0x1b, 'CKR_ACTION_PROHIBITED');
const CKR_CODES = new Map([...CKR_NAMES].map(([code, name]) => [name, code]));
const CKK_NAMES = reverseMap('CKK_');

/** CKK_* name without the prefix ('AES', 'DES3', …), or the hex value when pkcs11js does not know it. */
export function ckkName(code: number): string {
  return (CKK_NAMES.get(code) ?? `0x${code.toString(16)}`).replace(/^CKK_/, '');
}

export function ckrName(code: number): string {
  return CKR_NAMES.get(code) ?? `CKR_0x${code.toString(16)}`;
}

/** The numeric code of a CKR_* name, or undefined when pkcs11js does not know it. */
export function ckrCode(name: string): number | undefined {
  return CKR_CODES.get(name);
}
