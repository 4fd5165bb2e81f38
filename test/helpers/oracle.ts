// Test oracles for the conformance suite: what a conforming XKS reply must be, computed here
// independently of the service. The demo's raw AES key material plus Node's aes-256-gcm stand in
// for the HSM (SoftHSM2's AES-GCM output is byte-identical), so a ciphertext made here must decrypt
// through the proxy only if the proxy frames the HSM AAD exactly as the spec says (§2.4).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Reply } from './xks-client.js';
import { DEMO_KEYS } from '../../appliance/demo/layout.js';

/** The spec's error table («Error codes»): errorName -> HTTP status. */
export const SPEC_ERRORS: Readonly<Record<string, number>> = {
  ValidationException: 400,
  InvalidStateException: 400,
  InvalidCiphertextException: 400,
  InvalidKeyUsageException: 400,
  AuthenticationFailedException: 401,
  AccessDeniedException: 403,
  KeyNotFoundException: 404,
  InvalidUriPathException: 404,
  ThrottlingException: 429,
  InternalException: 500,
  UnsupportedOperationException: 501,
  DependencyTimeoutException: 503,
};

/** The label -> raw key map `xks demo` keeps under its directory (appliance/demo/layout.ts). */
export function loadKeyMaterial(demoDir: string): Map<string, Buffer> {
  const raw = JSON.parse(readFileSync(join(demoDir, 'secrets', 'demo-key-material.json'), 'utf8')) as Record<string, string>;
  // "_notice" says what the file is (demo only); everything else is a label.
  return new Map(Object.entries(raw).filter(([label]) => !label.startsWith('_')).map(([label, key]) => [label, Buffer.from(key, 'base64')]));
}

/** The raw AES key behind a demo external key id (via its HSM label). */
export function demoKeyById(demoDir: string): (keyId: string) => Buffer {
  const material = loadKeyMaterial(demoDir);
  return (id) => material.get(DEMO_KEYS.find((k) => k.id === id)!.label)!;
}

/** The spec's HSM AAD (A2): u16be(len(aad)) || aad || u8(len(md)) || md. Written out here, not
 *  imported from xks/aad.ts, so that a change there cannot change what the tests expect. */
export function specHsmAad(aad: Buffer, md: Buffer): Buffer {
  const lenAad = Buffer.alloc(2);
  lenAad.writeUInt16BE(aad.length);
  return Buffer.concat([lenAad, aad, Buffer.from([md.length]), md]);
}

/**
 * The appliance's own HSM AAD (not the spec's concern): metadata version 1 is the spec's framing;
 * version 2 (what the proxy emits by default) appends u8(len(keyId)) || keyId, binding the
 * ciphertext to its external key id. Written out here too, independently of xks/aad.ts.
 */
export function applianceHsmAad(aad: Buffer, md: Buffer, keyId: string): Buffer {
  const framed = specHsmAad(aad, md);
  if (md.length === 1 && md[0] === 0x02) return Buffer.concat([framed, Buffer.from([keyId.length]), Buffer.from(keyId, 'latin1')]);
  return framed;
}

export interface Sealed {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** AES-256-GCM with the HSM AAD given verbatim (so tests can also build wrongly framed ones). */
export function gcmSeal(key: Buffer, plaintext: Buffer, hsmAad: Buffer, iv: Buffer = randomBytes(12)): Sealed {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  cipher.setAAD(hsmAad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

/** The plaintext, or null when the tag does not verify. */
export function gcmOpen(key: Buffer, sealed: Sealed, hsmAad: Buffer): Buffer | null {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: 16 });
  decipher.setAAD(hsmAad);
  decipher.setAuthTag(sealed.tag);
  try {
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch {
    return null;
  }
}

/** CDIV per «Appendix C» (C1): SHA-256 over the decoded request AAD, metadata, IV, ct, tag. */
export function specCdiv(aad: Buffer, md: Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer): Buffer {
  return createHash('sha256').update(Buffer.concat([aad, md, iv, ciphertext, tag])).digest();
}

/** Canonical standard base64 (RFC 4648 §4: re-encodes to itself), of `decodedLength` bytes if given. */
export function isCanonicalBase64(value: unknown, decodedLength?: number): boolean {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return false;
  const bytes = Buffer.from(value, 'base64');
  return bytes.toString('base64') === value && (decodedLength === undefined || bytes.length === decodedLength);
}

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Spellings of `bytes` that are not standard base64 (RFC 4648 §4) but that Node's lenient decoder
 * still turns into exactly `bytes`: a proxy that decodes leniently would accept them, a strict one
 * answers 400 ValidationException. Which ones exist depends on the bytes (URL-safe needs a '+' or
 * '/' in the encoding, the padding cases need a length that is not a multiple of 3).
 */
export function lenientOnlyBase64(bytes: Buffer): Record<string, string> {
  const std = bytes.toString('base64');
  const data = std.replace(/=+$/, '');
  const out: Record<string, string> = {
    'a space inside': `${std.slice(0, 4)} ${std.slice(4)}`,
    'a newline inside': `${std.slice(0, 4)}\n${std.slice(4)}`,
    'a trailing newline': `${std}\n`,
    'an extra "="': `${std}=`,
  };
  if (/[+/]/.test(std)) out['the URL-safe alphabet'] = std.replace(/\+/g, '-').replace(/\//g, '_');
  if (data !== std) {
    out['padding missing'] = data;
    // The last data character carries 2 or 4 unused bits, zero in the canonical form: set one.
    const last = data.length - 1;
    out['non-canonical trailing bits'] = data.slice(0, last) + B64_ALPHABET[B64_ALPHABET.indexOf(data[last]!) | 1] + std.slice(data.length);
  }
  return out;
}

/**
 * Why `reply` is not the spec error `name` with its status, JSON content type and a conforming
 * body (errorName from the table, errorMessage < 512 printable ASCII); '' when it is.
 */
export function specErrorProblem(reply: Reply, status: number, name?: string): string {
  const problems: string[] = [];
  if (reply.status !== status) problems.push(`status ${reply.status}, want ${status}`);
  const type = String(reply.headers['content-type'] ?? '');
  if (!/^application\/json\b/i.test(type)) problems.push(`content-type "${type}"`);
  const body = reply.json as { errorName?: unknown; errorMessage?: unknown } | undefined;
  if (typeof body !== 'object' || body === null) return [...problems, `body is not JSON: ${reply.text.slice(0, 200)}`].join('; ');
  // 405 has no errorName in the spec (T5); everything else must use the table.
  if (status !== 405 && SPEC_ERRORS[String(body.errorName)] !== status) problems.push(`errorName ${String(body.errorName)} is not a spec name for ${status}`);
  if (name !== undefined && body.errorName !== name) problems.push(`errorName ${String(body.errorName)}, want ${name}`);
  if (body.errorMessage !== undefined) {
    if (typeof body.errorMessage !== 'string' || body.errorMessage.length >= 512 || !/^[\x20-\x7e]*$/.test(body.errorMessage)) {
      problems.push(`errorMessage not < 512 printable ASCII: ${JSON.stringify(body.errorMessage).slice(0, 100)}`);
    }
    if (/\bat .+:\d+:\d+\)?/.test(String(body.errorMessage))) problems.push('errorMessage carries a stack trace');
  }
  return problems.join('; ');
}
