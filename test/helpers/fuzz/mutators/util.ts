// What the mutators share: their shape, byte and value tables, and small generators.
import type { Draft, Layer } from '../draft.js';
import type { Rng } from '../../rng.js';
import type { FuzzTarget } from '../target.js';

// Mutators. Each changes the draft at one layer; the builder applies a case's mutators in layer
// order. `last` is set by every mutation after which the bytes may not be exactly one request as
// the server frames it (a body cut short or running into the next request); a mutation the
// server can only refuse needs no flag, since the refusal closes the connection anyway.

export interface Mutator {
  name: string;
  layer: Layer;
  weight: number;
  apply(d: Draft, r: Rng, t: FuzzTarget): void;
}

export const B64_FIELDS = ['plaintext', 'additionalAuthenticatedData', 'ciphertext', 'initializationVector', 'authenticationTag', 'ciphertextMetadata'];
export const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Bytes that break UTF-8 in different ways: overlong NUL, surrogate, 5-byte form, lone continuation, FF. */
export const BAD_UTF8 = ['c080', 'eda080', 'f888808080', '80', 'ff', 'fe', 'c3', 'e282', 'f4908080'].map((h) => Buffer.from(h, 'hex'));
export const WEIRD_BYTES = [0x00, 0x0d, 0x0a, 0x09, 0x20, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x3a, 0x2c, 0x3b, 0x25, 0x3f, 0x23, 0x2f];

/** A size from `usual`, or one time in ten from `large`: big inputs stay covered without
 *  making the average request big. */
export function sizeOf(r: Rng, usual: readonly number[], large: readonly number[]): number {
  return r.chance(0.1) ? r.pick(large) : r.pick(usual);
}

export function randomToken(r: Rng, max = 12): string {
  let s = '';
  for (let n = r.range(1, max); n > 0; n--) s += r.pick([...TOKEN_CHARS]);
  return s;
}

export function randomJsonValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 12 : 15)) {
    case 0: return null;
    case 1: return r.chance(0.5);
    case 2: return r.pick([0, -0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, 5e-324]);
    case 3: return '';
    case 4: return 'x'.repeat(sizeOf(r, [1, 64, 4096], [4097, 20000]));
    case 5: return r.pick(['AES_GCM', 'SHA_256', 'Encrypt', 'ENABLED', '\u0000', '\u202e', '😀', 'null', 'true', '0']);
    case 6: return Buffer.from(r.bytes(r.range(0, 40))).toString('base64');
    case 7: return r.hex(r.range(0, 64));
    case 8: return [];
    case 9: return {};
    case 10: return 'A'.repeat(r.range(1, 8)) + '==';
    case 11: return Number.MAX_SAFE_INTEGER;
    default: return r.chance(0.5) ? [randomJsonValue(r, depth + 1), randomJsonValue(r, depth + 1)] : { [randomToken(r)]: randomJsonValue(r, depth + 1) };
  }
}

/** Paths of the draft's JSON value, e.g. ['requestMetadata', 'kmsRequestId']. */
export function jsonPaths(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  const out: string[][] = prefix.length ? [prefix] : [];
  for (const k of Object.keys(value)) out.push(...jsonPaths((value as Record<string, unknown>)[k], [...prefix, k]));
  return out;
}

export function setPath(root: Record<string, unknown>, path: string[], value: unknown, remove = false): void {
  let node: Record<string, unknown> = root;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) return;
    node = next as Record<string, unknown>;
  }
  const leaf = path[path.length - 1]!;
  if (remove) delete node[leaf];
  else node[leaf] = value;
}

/** Spellings of base64 a strict decoder must refuse, or edge values it must handle. */
export function base64Variant(r: Rng, value: string): string {
  const data = value.replace(/=+$/, '');
  return r.pick([
    () => value.replace(/\+/g, '-').replace(/\//g, '_'),
    () => data,
    () => value + '=',
    () => `${value.slice(0, 4)} ${value.slice(4)}`,
    () => `${value}\n`,
    () => `${value.slice(0, 4)}\r\n${value.slice(4)}`,
    () => (data.length ? data.slice(0, -1) + 'B' + value.slice(data.length) : 'B==='),
    () => '',
    () => '=',
    () => '====',
    () => '!!!!',
    () => value.slice(0, r.int(value.length + 1)),
    () => value + value,
    () => value.toLowerCase(),
    () => `%${value}`,
    () => '\u00e9' + value,
    () => Buffer.alloc(sizeOf(r, [0, 1, 11, 12, 13, 15, 16, 17, 20, 21, 4300], [16384, 16385, 40000])).toString('base64'),
  ])();
}

/** The body text: the JSON value's, unless a mutation already went down to text. */
export function textOf(d: Draft): string {
  return d.jsonText ?? JSON.stringify(d.json);
}

export function chunked(body: Buffer, r: Rng, extras: boolean): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; ) {
    const n = Math.min(body.length - at, r.range(1, 512));
    const size = r.chance(0.2) ? n.toString(16).toUpperCase().padStart(4, '0') : n.toString(16);
    parts.push(Buffer.from(`${size}${extras && r.chance(0.3) ? ';ext=1' : ''}\r\n`, 'latin1'), body.subarray(at, at + n), Buffer.from('\r\n'));
    at += n;
  }
  parts.push(Buffer.from(extras && r.chance(0.5) ? '0\r\nX-Trailer: 1\r\n\r\n' : '0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}
