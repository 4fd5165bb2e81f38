// Strict request validation for the four XKS APIs (spec §2). Unknown fields are ignored (M3),
// kmsRequestId is opaque (M1), any kmsOperation is accepted (M2); everything else that is wrong
// is a 400 ValidationException, and sizes above this build's maxima are 501 (spec «Error codes»).
import { XksError } from './errors.js';

/** This build's maxima: at least the spec's minima (E2 4300 bytes, E4 8192 bytes). */
export const MAX_PLAINTEXT_BYTES = 16384;
export const MAX_AAD_BYTES = 16384;
const MAX_METADATA_FIELD = 4096; // requestMetadata strings: ARNs up to 2048 must pass (T12)

export type Operation = 'metadata' | 'encrypt' | 'decrypt' | 'health';

/** requestMetadata as KMS sends it; `raw` keeps every field for policy and audit. */
export interface RequestMetadata {
  kmsRequestId: string;
  kmsOperation: string;
  awsPrincipalArn?: string;
  awsSourceVpc?: string;
  awsSourceVpce?: string;
  kmsKeyArn?: string;
  kmsViaService?: string;
  raw: Record<string, unknown>;
}

export interface EncryptRequest {
  requestMetadata: RequestMetadata;
  plaintext: Buffer;
  aad: Buffer;
  cdiv: boolean;
}

export interface DecryptRequest {
  requestMetadata: RequestMetadata;
  ciphertext: Buffer;
  metadata: Buffer;
  aad: Buffer;
  iv: Buffer;
  tag: Buffer;
}

const invalid = (message: string) => new XksError('ValidationException', message);
const tooLarge = (field: string, max: number) => new XksError('UnsupportedOperationException', `${field} above ${max} bytes is not supported`);

const REQUIRED_METADATA: Record<Operation, readonly string[]> = {
  metadata: ['awsPrincipalArn', 'kmsOperation', 'kmsRequestId'],
  encrypt: ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId'],
  decrypt: ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId'],
  health: ['kmsOperation', 'kmsRequestId'],
};
const KNOWN_STRINGS = ['kmsRequestId', 'kmsOperation', 'awsPrincipalArn', 'awsSourceVpc', 'awsSourceVpce', 'kmsKeyArn', 'kmsViaService'] as const;

/** `application/json`, optionally with parameters such as charset=utf-8 (T1). */
export function checkContentType(value: string | undefined): void {
  const type = value?.split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw invalid('Content-Type must be application/json');
}

export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('Request body is not valid JSON');
  }
  if (!isObject(value)) throw invalid('Request body must be a JSON object');
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Standard base64 only (RFC 4648 §4): `+/` alphabet, `=` padding, no whitespace, canonical
 * trailing bits. Node's decoder is lenient, so re-encoding must give back the exact input.
 */
export function decodeBase64Strict(value: string): Buffer | null {
  const decoded = Buffer.from(value, 'base64');
  return decoded.toString('base64') === value ? decoded : null;
}

function base64Field(body: Record<string, unknown>, field: string, required: boolean): Buffer | undefined {
  const value = body[field];
  if (value === undefined || value === null) {
    if (required) throw invalid(`${field} is required`);
    return undefined;
  }
  if (typeof value !== 'string') throw invalid(`${field} must be a base64 string`);
  const decoded = decodeBase64Strict(value);
  if (!decoded) throw invalid(`${field} is not valid standard base64`);
  return decoded;
}

export function parseRequestMetadata(body: Record<string, unknown>, op: Operation): RequestMetadata {
  const raw = body['requestMetadata'];
  if (!isObject(raw)) throw invalid('requestMetadata is required');
  for (const field of KNOWN_STRINGS) {
    const v = raw[field];
    if (v !== undefined && (typeof v !== 'string' || v.length > MAX_METADATA_FIELD)) {
      throw invalid(`requestMetadata.${field} must be a string of at most ${MAX_METADATA_FIELD} characters`);
    }
  }
  for (const field of REQUIRED_METADATA[op]) {
    // Present and a string; the value itself is opaque (M1, M4): even "" is KMS's to send.
    if (typeof raw[field] !== 'string') throw invalid(`requestMetadata.${field} is required`);
  }
  return { ...(raw as Omit<RequestMetadata, 'raw'>), raw };
}

function checkAlgorithm(body: Record<string, unknown>): void {
  if (body['encryptionAlgorithm'] !== 'AES_GCM') throw invalid('encryptionAlgorithm must be AES_GCM');
}

function aadField(body: Record<string, unknown>): Buffer {
  const aad = base64Field(body, 'additionalAuthenticatedData', false) ?? Buffer.alloc(0);
  if (aad.length > MAX_AAD_BYTES) throw tooLarge('additionalAuthenticatedData', MAX_AAD_BYTES);
  return aad;
}

export function parseEncrypt(body: Record<string, unknown>): EncryptRequest {
  const requestMetadata = parseRequestMetadata(body, 'encrypt');
  const plaintext = base64Field(body, 'plaintext', true)!;
  checkAlgorithm(body);
  const aad = aadField(body);
  const cdivAlg = body['ciphertextDataIntegrityValueAlgorithm'];
  if (cdivAlg !== undefined && cdivAlg !== null && cdivAlg !== 'SHA_256') {
    throw invalid('ciphertextDataIntegrityValueAlgorithm must be SHA_256');
  }
  if (plaintext.length > MAX_PLAINTEXT_BYTES) throw tooLarge('plaintext', MAX_PLAINTEXT_BYTES);
  return { requestMetadata, plaintext, aad, cdiv: cdivAlg === 'SHA_256' };
}

export function parseDecrypt(body: Record<string, unknown>): DecryptRequest {
  const requestMetadata = parseRequestMetadata(body, 'decrypt');
  const ciphertext = base64Field(body, 'ciphertext', true)!;
  checkAlgorithm(body);
  const metadata = base64Field(body, 'ciphertextMetadata', false) ?? Buffer.alloc(0);
  if (metadata.length > 20) throw invalid('ciphertextMetadata must be at most 20 bytes');
  const iv = base64Field(body, 'initializationVector', true)!;
  if (iv.length !== 12 && iv.length !== 16) throw invalid('initializationVector must be 12 or 16 bytes');
  const tag = base64Field(body, 'authenticationTag', true)!;
  if (tag.length !== 16) throw invalid('authenticationTag must be 16 bytes');
  const aad = aadField(body);
  if (ciphertext.length > MAX_PLAINTEXT_BYTES) throw tooLarge('ciphertext', MAX_PLAINTEXT_BYTES);
  return { requestMetadata, ciphertext, metadata, aad, iv, tag };
}
