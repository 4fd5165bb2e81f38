// Seeded HTTP fuzzing of the XKS API. Every choice in a case (API, key, mutations, bytes) is a
// function of (run seed, case index) alone, so a case that breaks a rule is rebuilt from those two
// numbers (against another demo only its host, credentials and signature differ). A case
// starts as a valid, signed XKS request (one of the four APIs) and is mutated at one or more
// layers, in wire order: JSON value -> body bytes -> request line -> signing -> Authorization ->
// headers -> framing (Content-Length / chunked) -> raw bytes. Bodies are re-signed after body and
// request-line mutations, so those reach validation and routing instead of stopping at SigV4.
//
// Sections: PRNG · request draft and wire form · SigV4 signer · mutators · case builder ·
// response parser · reply rules · TLS runner · bookkeeping · raw exchanges (the signer, the
// parser and the raw exchanges also serve the hardening and edge-proxy tests).
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { DEMO_KEYS } from '../../appliance/demo/layout.js';
import type { DemoJson } from './demo.js';
import { gcmSeal, loadKeyMaterial, specHsmAad, SPEC_ERRORS } from './oracle.js';

// ---------------------------------------------------------------------------------------------
// PRNG: sfc32 seeded through splitmix32. Math.random is never used for a case.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** Uniform in [lo, hi], both included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    let total = 0;
    for (const [, w] of items) total += w;
    let x = (this.u32() / 0x1_0000_0000) * total;
    for (const [item, w] of items) if ((x -= w) < 0) return item;
    return items[items.length - 1]![0];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  hex(n: number): string {
    let s = '';
    while (s.length < n) s += this.u32().toString(16).padStart(8, '0');
    return s.slice(0, n);
  }
}

/** The seed of case `index` in run `seed`: cases do not depend on each other or on scheduling. */
export function caseSeed(seed: number, index: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) + Math.imul(index + 1, 0x165667b1)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// What a case is aimed at.

export type Api = 'health' | 'metadata' | 'encrypt' | 'decrypt';
export const APIS: readonly Api[] = ['health', 'metadata', 'encrypt', 'decrypt'];

export interface Credential {
  accessKeyId: string;
  secretAccessKey: string;
}

/** A valid Decrypt input (an oracle ciphertext), base64 fields as the API takes them. */
export interface SealedInput {
  keyId: string;
  /** What a successful Decrypt of it must return (base64); not sent. */
  plaintext: string;
  ciphertext: string;
  initializationVector: string;
  authenticationTag: string;
  ciphertextMetadata: string;
  additionalAuthenticatedData?: string;
}

export interface FuzzTarget {
  /** Host header value, e.g. localhost:8443 (signed). */
  host: string;
  uriPath: string;
  region: string;
  primary: Credential;
  second: Credential;
  /** The demo's keys: the first is the encrypt+decrypt key most cases use. */
  keyIds: readonly string[];
  sealed: readonly SealedInput[];
  /** One signing time for the whole run (SigV4 allows 5 minutes of skew). */
  date: Date;
  maxBodyBytes: number;
}

/**
 * The demo as a fuzz target. Decrypt cases start from ciphertexts sealed here by the oracle
 * (Node's aes-256-gcm with the demo's key material and the spec's HSM AAD), with IVs and
 * plaintexts from the seed, so they are valid and the same on every run.
 */
export function demoTarget(demo: DemoJson, dir: string, seed: number, maxBodyBytes: number): FuzzTarget {
  const material = loadKeyMaterial(dir);
  const r = new Rng(seed);
  const metadata = Buffer.from([0x01]); // ciphertextMetadata format version 1 (xks/aad.ts)
  const sealed: SealedInput[] = [];
  for (const keyId of [demo.keys.encryptDecrypt, demo.keys.encryptDecrypt, demo.keys.encryptDecrypt, demo.keys.decryptOnly]) {
    for (let i = 0; i < 4; i++) {
      const aad = r.chance(0.5) ? r.bytes(r.range(1, 32)) : Buffer.alloc(0);
      const key = material.get(DEMO_KEYS.find((k) => k.id === keyId)!.label)!;
      const plaintext = r.bytes(r.pick([1, 32, 100]));
      const s = gcmSeal(key, plaintext, specHsmAad(aad, metadata), r.bytes(12));
      sealed.push({
        keyId,
        plaintext: plaintext.toString('base64'),
        ciphertext: s.ciphertext.toString('base64'),
        initializationVector: s.iv.toString('base64'),
        authenticationTag: s.tag.toString('base64'),
        ciphertextMetadata: metadata.toString('base64'),
        ...(aad.length ? { additionalAuthenticatedData: aad.toString('base64') } : {}),
      });
    }
  }
  const k = demo.keys;
  return {
    host: new URL(demo.endpoint).host,
    uriPath: demo.uriPath,
    region: demo.region,
    primary: { accessKeyId: demo.accessKeyId, secretAccessKey: demo.secretAccessKey },
    second: demo.secondCredential,
    keyIds: [k.encryptDecrypt, k.encryptOnly, k.decryptOnly, k.noUsage, k.disabled, 'no-such-key'],
    sealed,
    date: new Date(),
    maxBodyBytes,
  };
}

// ---------------------------------------------------------------------------------------------
// The request as it is being built, and its wire form. Head strings are latin1: a char is a byte.

type Layer = 'json' | 'body' | 'line' | 'sign' | 'auth' | 'header' | 'framing' | 'raw';
const LAYER_ORDER: readonly Layer[] = ['json', 'body', 'line', 'sign', 'auth', 'header', 'framing', 'raw'];

interface Draft {
  api: Api;
  /** The body as a value (layer json), or its text when a mutation needs text JSON cannot express. */
  json: Record<string, unknown>;
  jsonText: string | undefined;
  body: Buffer;
  method: string;
  target: string;
  version: string;
  headers: Array<[string, string]>;
  /** Bytes after the head when they are not simply `body` (chunked, cut, extended). */
  payload: Buffer | undefined;
  bytes: Buffer | undefined;
  /** Signing choices (layer sign). */
  sign: { with: Credential | null; region: string; date: Date; extraSigned: string[] };
  /**
   * The bytes may not be exactly one well-framed request: the client half-closes after writing,
   * so the server sees the end and must answer or close, and the connection is not reused.
   */
  last: boolean;
}

export interface FuzzCase {
  index: number;
  bytes: Buffer;
  last: boolean;
  /** The request line's method as written: HEAD replies carry no body. */
  method: string;
  api: Api;
  mutators: string[];
  /** A Decrypt case: the only plaintext a 200 may carry (GCM: no mutation can yield another). */
  plaintext?: string;
}

const CRLF = '\r\n';

type WireRequest = Pick<Draft, 'method' | 'target' | 'version' | 'headers' | 'body'> & { payload?: Buffer | undefined };

function serialize(d: WireRequest): Buffer {
  let head = `${d.method} ${d.target} ${d.version}${CRLF}`;
  for (const [name, value] of d.headers) head += `${name}: ${value}${CRLF}`;
  return Buffer.concat([Buffer.from(head + CRLF, 'latin1'), d.payload ?? d.body]);
}

const headerIndex = (d: Draft, name: string) => d.headers.findIndex(([n]) => n.toLowerCase() === name);
function setHeader(d: Draft, name: string, value: string): void {
  const i = headerIndex(d, name.toLowerCase());
  if (i < 0) d.headers.push([name, value]);
  else d.headers[i] = [d.headers[i]![0], value];
}
const removeHeader = (d: Draft, name: string) => (d.headers = d.headers.filter(([n]) => n.toLowerCase() !== name));
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding']);

// ---------------------------------------------------------------------------------------------
// SigV4, synchronous: 100,000 signatures through an async signer would dominate the run. The
// fuzz test checks it once against @smithy/signature-v4 (test/helpers/sign.ts).

const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const amzDateOf = (date: Date) => date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

export class FastSigner {
  private readonly keys = new Map<string, Buffer>();

  /** Headers to add: x-amz-date and authorization, signing host, x-amz-date and `extra`. */
  sign(
    req: { method: string; path: string; headers: ReadonlyArray<readonly [string, string]>; body: Buffer },
    cred: Credential,
    region: string,
    date: Date,
    extraSigned: readonly string[] = [],
  ): { 'x-amz-date': string; authorization: string } {
    const amzDate = amzDateOf(date);
    const day = amzDate.slice(0, 8);
    const values = new Map<string, string>([['x-amz-date', amzDate]]);
    for (const [name, value] of req.headers) {
      const n = name.toLowerCase();
      if (n === 'host' || extraSigned.includes(n)) values.set(n, values.has(n) ? `${values.get(n)},${value.trim()}` : value.trim());
    }
    const names = [...values.keys()].sort();
    const signedHeaders = names.join(';');
    const canonical = `${req.method}\n${req.path}\n\n${names.map((n) => `${n}:${values.get(n)}\n`).join('')}\n${signedHeaders}\n${sha256Hex(req.body)}`;
    const scope = `${day}/${region}/kms-xks-proxy/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256Hex(Buffer.from(canonical, 'latin1'))}`;
    const signature = createHmac('sha256', this.signingKey(cred.secretAccessKey, day, region)).update(toSign).digest('hex');
    return {
      'x-amz-date': amzDate,
      authorization: `AWS4-HMAC-SHA256 Credential=${cred.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    };
  }

  private signingKey(secret: string, day: string, region: string): Buffer {
    const id = `${secret}/${day}/${region}`;
    let key = this.keys.get(id);
    if (!key) {
      const hmac = (k: string | Buffer, v: string) => createHmac('sha256', k).update(v).digest();
      key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), 'kms-xks-proxy'), 'aws4_request');
      this.keys.set(id, key);
    }
    return key;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutators. Each changes the draft at one layer; the builder applies a case's mutators in layer
// order. `last` is set by every mutation after which the bytes may not be exactly one request as
// the server frames it (a body cut short or running into the next request); a mutation the
// server can only refuse needs no flag, since the refusal closes the connection anyway.

interface Mutator {
  name: string;
  layer: Layer;
  weight: number;
  apply(d: Draft, r: Rng, t: FuzzTarget): void;
}

const B64_FIELDS = ['plaintext', 'additionalAuthenticatedData', 'ciphertext', 'initializationVector', 'authenticationTag', 'ciphertextMetadata'];
const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Bytes that break UTF-8 in different ways: overlong NUL, surrogate, 5-byte form, lone continuation, FF. */
const BAD_UTF8 = ['c080', 'eda080', 'f888808080', '80', 'ff', 'fe', 'c3', 'e282', 'f4908080'].map((h) => Buffer.from(h, 'hex'));
const WEIRD_BYTES = [0x00, 0x0d, 0x0a, 0x09, 0x20, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x3a, 0x2c, 0x3b, 0x25, 0x3f, 0x23, 0x2f];

/** A size from `usual`, or one time in ten from `large`: big inputs stay covered without
 *  making the average request big. */
function sizeOf(r: Rng, usual: readonly number[], large: readonly number[]): number {
  return r.chance(0.1) ? r.pick(large) : r.pick(usual);
}

function randomToken(r: Rng, max = 12): string {
  let s = '';
  for (let n = r.range(1, max); n > 0; n--) s += r.pick([...TOKEN_CHARS]);
  return s;
}

function randomJsonValue(r: Rng, depth = 0): unknown {
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
function jsonPaths(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  const out: string[][] = prefix.length ? [prefix] : [];
  for (const k of Object.keys(value)) out.push(...jsonPaths((value as Record<string, unknown>)[k], [...prefix, k]));
  return out;
}

function setPath(root: Record<string, unknown>, path: string[], value: unknown, remove = false): void {
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
function base64Variant(r: Rng, value: string): string {
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
function textOf(d: Draft): string {
  return d.jsonText ?? JSON.stringify(d.json);
}

const MUTATORS: Mutator[] = [
  // --- JSON values: the body stays valid JSON text (mostly), its meaning does not.
  {
    name: 'json.type-confusion', layer: 'json', weight: 6,
    apply(d, r) {
      const paths = jsonPaths(d.json);
      if (paths.length) setPath(d.json, r.pick(paths), randomJsonValue(r));
    },
  },
  {
    name: 'json.drop-field', layer: 'json', weight: 3,
    apply(d, r) {
      const paths = jsonPaths(d.json);
      if (paths.length) setPath(d.json, r.pick(paths), undefined, true);
    },
  },
  {
    name: 'json.unknown-field', layer: 'json', weight: 2,
    apply(d, r) {
      const md = d.json['requestMetadata'];
      const where = r.chance(0.5) && typeof md === 'object' && md !== null ? (md as Record<string, unknown>) : d.json;
      where[r.pick(['constructor', 'toString', 'hasOwnProperty', 'valueOf', randomToken(r), 'ciphertextDataIntegrityValue', 'raw'])] = randomJsonValue(r);
    },
  },
  {
    name: 'json.proto-key', layer: 'json', weight: 1,
    apply(d, r) {
      const text = textOf(d);
      const inner = r.chance(0.5) && text.includes('"requestMetadata":{');
      d.jsonText = inner
        ? text.replace('"requestMetadata":{', '"requestMetadata":{"__proto__":{"awsPrincipalArn":"arn:aws:iam::1:root","kmsOperation":"x"},')
        : `{"__proto__":{"plaintext":"AAAA","polluted":true},${text.slice(1)}`;
    },
  },
  {
    name: 'json.huge-number', layer: 'json', weight: 2,
    apply(d, r) {
      const text = textOf(d);
      const lit = r.pick(['1e999999', '-1e400', '123456789012345678901234567890123456789', '0.' + '0'.repeat(5000) + '1', '1' + '0'.repeat(30000), '-0', '1E+2', 'NaN', 'Infinity', '0x10', '01']);
      const field = r.pick(['plaintext', 'kmsRequestId', 'encryptionAlgorithm', 'requestMetadata', 'initializationVector']);
      const re = new RegExp(`("${field}":)("(?:[^"\\\\]|\\\\.)*"|\\{[^}]*\\})`);
      d.jsonText = re.test(text) ? text.replace(re, `$1${lit}`) : `${text.slice(0, -1)},"n":${lit}}`;
    },
  },
  {
    name: 'json.deep-nesting', layer: 'json', weight: 1.5,
    apply(d, r) {
      const depth = sizeOf(r, [64, 500], [10_000, 30_000]);
      const [open, close] = r.pick([['[', ']'], ['{"a":', '}']] as const);
      const nested = open.repeat(depth) + (open === '[' ? '' : '1') + close.repeat(depth);
      const text = textOf(d);
      d.jsonText = r.chance(0.3) ? nested : `${text.slice(0, -1)},"deep":${nested}}`;
    },
  },
  {
    name: 'json.top-level', layer: 'json', weight: 1,
    apply(d, r) {
      d.jsonText = r.pick(['[]', 'null', '"x"', '123', 'true', '', ' ', '{', '}', '[{}]', '{}', `[${textOf(d)}]`, '{"requestMetadata":null}', '\u0000']);
    },
  },
  {
    name: 'json.duplicate-keys', layer: 'json', weight: 1,
    apply(d, r) {
      const text = textOf(d);
      const key = r.pick(['requestMetadata', 'plaintext', 'encryptionAlgorithm', 'ciphertext']);
      d.jsonText = `{"${key}":${JSON.stringify(randomJsonValue(r))},${text.slice(1, -1)},"${key}":${JSON.stringify(randomJsonValue(r))}}`;
    },
  },
  {
    name: 'json.string-escapes', layer: 'json', weight: 2,
    apply(d, r) {
      const text = textOf(d);
      const esc = r.pick(['\\u0000', '\\ud800', '\\udfff\\ud800', '\\u202e', '\\"', '\\\\', '\\/', '\\x41', '\\u00', '\\q', '\u0001', '\t', '\u2028']);
      const at = text.indexOf('":"', r.int(Math.max(1, text.length - 4)));
      d.jsonText = at < 0 ? text : text.slice(0, at + 3) + esc + text.slice(at + 3);
    },
  },
  {
    name: 'json.base64-edge', layer: 'json', weight: 5,
    apply(d, r) {
      const present = B64_FIELDS.filter((f) => typeof d.json[f] === 'string');
      if (!present.length) return;
      const field = r.pick(present);
      d.json[field] = base64Variant(r, d.json[field] as string);
    },
  },
  {
    name: 'json.sizes', layer: 'json', weight: 3,
    apply(d, r) {
      const field = r.pick(B64_FIELDS);
      const n = sizeOf(r, [0, 1, 11, 12, 16, 17, 20, 21, 4300], [8192, 16384, 16385, 20000, 40000]);
      d.json[field] = Buffer.alloc(n, r.int(256)).toString('base64');
    },
  },
  {
    name: 'json.algorithm', layer: 'json', weight: 2,
    apply(d, r) {
      const field = r.pick(['encryptionAlgorithm', 'ciphertextDataIntegrityValueAlgorithm']);
      d.json[field] = r.pick(['aes_gcm', 'AES-GCM', 'AES_GCM ', 'RSAES_OAEP_SHA_256', '', null, 'SHA_256', 'sha_256', 'AES_GCM\u0000', 7]);
    },
  },
  {
    name: 'json.metadata-strings', layer: 'json', weight: 2,
    apply(d, r) {
      const md = d.json['requestMetadata'];
      if (typeof md !== 'object' || md === null) return;
      const field = r.pick(['kmsRequestId', 'kmsOperation', 'awsPrincipalArn', 'kmsKeyArn', 'kmsViaService', 'awsSourceVpce', 'awsSourceVpc']);
      (md as Record<string, unknown>)[field] = r.pick(['', ' ', 'x'.repeat(4096), 'x'.repeat(4097), '\u0000', '${jndi:ldap://x}', '<script>', '\u202eevil', 'a\nb', '../../etc/passwd', 'arn:aws:iam::*:*']);
    },
  },
  {
    name: 'json.other-api-body', layer: 'json', weight: 1,
    apply(d, r, t) {
      d.json = baseBody(r.pick(APIS.filter((a) => a !== d.api)), r, t);
    },
  },

  // --- Body bytes. The builder re-signs afterwards (mostly), so these reach the JSON parser.
  {
    name: 'body.bit-flip', layer: 'body', weight: 5,
    apply(d, r) {
      if (!d.body.length) return;
      d.body = Buffer.from(d.body);
      for (let n = r.range(1, 8); n > 0; n--) d.body[r.int(d.body.length)]! ^= 1 << r.int(8);
    },
  },
  {
    name: 'body.truncate', layer: 'body', weight: 3,
    apply(d, r) {
      d.body = d.body.subarray(0, r.int(d.body.length + 1));
    },
  },
  {
    name: 'body.extend', layer: 'body', weight: 2,
    apply(d, r) {
      const tail = r.pick([() => r.bytes(r.range(1, 64)), () => Buffer.from(' '.repeat(r.range(1, 4000))), () => Buffer.from('{}'), () => Buffer.from(',"x":1}'), () => Buffer.from('\u0000')]);
      d.body = Buffer.concat([d.body, tail()]);
    },
  },
  {
    name: 'body.bad-utf8', layer: 'body', weight: 3,
    apply(d, r) {
      const at = r.int(d.body.length + 1);
      d.body = Buffer.concat([d.body.subarray(0, at), r.pick(BAD_UTF8), d.body.subarray(at)]);
    },
  },
  {
    name: 'body.encoding', layer: 'body', weight: 1,
    apply(d, r) {
      const text = d.body.toString('latin1');
      d.body = r.pick([
        () => Buffer.concat([Buffer.from('efbbbf', 'hex'), d.body]),
        () => Buffer.from(text, 'utf16le'),
        () => Buffer.concat([Buffer.from('fffe', 'hex'), Buffer.from(text, 'utf16le')]),
        () => Buffer.from(text.replace(/"/g, "'")),
        () => Buffer.from(`\r\n\t ${text} \r\n`),
      ])();
    },
  },
  {
    name: 'body.empty', layer: 'body', weight: 1,
    apply(d) {
      d.body = Buffer.alloc(0);
    },
  },
  {
    name: 'body.over-limit', layer: 'body', weight: 0.4,
    apply(d, r, t) {
      // Valid JSON padded with whitespace just past the cap, or far past it.
      const size = sizeOf(r, [t.maxBodyBytes + 1, t.maxBodyBytes + r.range(2, 4096)], [t.maxBodyBytes * 3]);
      d.body = Buffer.concat([d.body, Buffer.alloc(Math.max(0, size - d.body.length), 0x20)]);
    },
  },

  // --- Request line. Signed afterwards: routing and method checks are what is tested.
  {
    name: 'line.method', layer: 'line', weight: 4,
    apply(d, r) {
      d.method = r.pick(['GET', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'post', 'Post', 'P0ST', 'PROPFIND', 'M-SEARCH', 'X'.repeat(sizeOf(r, [1, 64], [2000])), randomToken(r), 'GET ', '', 'PO ST', 'POST\u0000', 'PÖST', 'CONNECT', 'PRI']);
    },
  },
  {
    name: 'line.path', layer: 'line', weight: 6,
    apply(d, r, t) {
      const p = d.target;
      const key = t.keyIds[0]!;
      d.target = r.pick([
        () => { const at = r.int(p.length + 1); return p.slice(0, at) + r.pick(['/', '.', '..', '%', '%00', '%2F', '%2e', '?', '?a=b', '#', ';', '\\', '//', '\u00e9', '\u00ff', '*', '~']) + p.slice(at); },
        () => { const at = r.int(p.length); return p.slice(0, at) + p.slice(at + 1); },
        () => p + '/',
        () => p.replace('/kms/', '/KMS/'),
        () => p.replace(t.uriPath, '/nope' + t.uriPath),
        () => p.replace(t.uriPath, t.uriPath.replace('/v1', '/v2')),
        () => p.replace(/\/keys\/[^/]+/, `/keys/${r.pick(['x'.repeat(128), 'x'.repeat(129), key + '.', '..', '.', 'no-such-key', '%2e%2e', key.toUpperCase(), ''])}`),
        () => p.replace(/\/(metadata|encrypt|decrypt|health)$/, `/${r.pick(['Encrypt', 'encrypt/', 'sign', 'health', 'metadata', 'decrypt', 'encrypt', ''])}`),
        () => `https://${t.host}${p}`,
        () => '*',
        () => '/',
        () => '/healthz',
        () => p + '/' + 'a'.repeat(sizeOf(r, [200], [9000])),
        () => p.replace(/\//g, '//'),
        () => p + '?' + 'q'.repeat(r.range(1, 100)),
      ])();
    },
  },
  {
    name: 'line.version', layer: 'line', weight: 1.5,
    apply(d, r) {
      d.version = r.pick(['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/3', 'http/1.1', 'HTTP/1.1 ', 'HTTP/11', 'HTTP/1', '', 'HTTP/9.9', 'HTTP/1.01', 'HTTPS/1.1', 'HTTP/1.1\u0000']);
    },
  },

  // --- Signing choices (before the signature is computed).
  {
    name: 'sign.second-credential', layer: 'sign', weight: 2,
    apply(d, _r, t) {
      d.sign.with = t.second;
    },
  },
  {
    name: 'sign.unsigned', layer: 'sign', weight: 1,
    apply(d) {
      d.sign.with = null;
    },
  },
  {
    name: 'sign.wrong-secret', layer: 'sign', weight: 1,
    apply(d, r, t) {
      d.sign.with = { accessKeyId: r.chance(0.5) ? t.primary.accessKeyId : 'XKS' + 'A'.repeat(17), secretAccessKey: t.second.secretAccessKey };
    },
  },
  {
    name: 'sign.scope', layer: 'sign', weight: 1,
    apply(d, r, t) {
      if (r.chance(0.5)) d.sign.region = r.pick(['us-west-2', 'eu-central-1', 'US-EAST-1', '', 'x'.repeat(40)]);
      else d.sign.date = new Date(t.date.getTime() + r.pick([-1, 1]) * r.pick([6 * 60_000, 86_400_000, 3650 * 86_400_000]));
    },
  },
  {
    name: 'sign.extra-headers', layer: 'sign', weight: 2,
    apply(d, r) {
      d.sign.extraSigned.push('content-type');
      if (r.chance(0.5)) {
        d.headers.push(['X-Amz-Fuzz', r.hex(8)]);
        d.sign.extraSigned.push('x-amz-fuzz');
      }
    },
  },

  // --- Authorization and X-Amz-Date after signing.
  {
    name: 'auth.signature-tweak', layer: 'auth', weight: 4,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const at = v.lastIndexOf('Signature=') + 10 + r.int(64);
      const tweak = r.pick([
        () => v.slice(0, at) + ((parseInt(v[at] ?? '0', 16) + 1) % 16).toString(16) + v.slice(at + 1),
        () => v.replace(/Signature=([0-9a-f]+)/, (_m, s: string) => `Signature=${s.toUpperCase()}`),
        () => v.slice(0, -1),
        () => v + '0',
        () => v + ' ',
        () => v.replace(/Signature=[0-9a-f]+/, 'Signature=' + '0'.repeat(64)),
      ]);
      d.headers[i] = [d.headers[i]![0], tweak()];
    },
  },
  {
    name: 'auth.garble', layer: 'auth', weight: 3,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const g = r.pick([
        () => v.replace('AWS4-HMAC-SHA256', 'aws4-hmac-sha256'),
        () => v.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA512'),
        () => v.replace(/, /g, ','),
        () => v.replace(/, /g, ';'),
        () => v.replace(/Credential=[^,]*, /, ''),
        () => v.replace(/(SignedHeaders=[^,]*)/, '$1, $1'),
        () => v.replace(/SignedHeaders=([^,]*)/, (_m, s: string) => `SignedHeaders=${s.split(';').reverse().join(';')}`),
        () => v.replace(/SignedHeaders=([^,]*)/, (_m, s: string) => `SignedHeaders=${s.replace('host;', '')}`),
        () => v.replace(/SignedHeaders=([^,]*)/, 'SignedHeaders=authorization;host;x-amz-date'),
        () => v.replace(/Credential=([^/]*)/, `Credential=${r.pick(['', 'A'.repeat(200), '../', 'XKS%00'])}`),
        () => v.replace(/\/kms-xks-proxy\//, '/kms/'),
        () => v + ', ' + 'x'.repeat(sizeOf(r, [10], [3000])),
        () => v.slice(0, r.int(v.length)),
        () => 'AWS4-HMAC-SHA256',
        () => 'Basic dXNlcjpwYXNz',
        () => '',
      ]);
      d.headers[i] = [d.headers[i]![0], g()];
    },
  },
  {
    name: 'auth.amz-date', layer: 'auth', weight: 2,
    apply(d, r) {
      const i = headerIndex(d, 'x-amz-date');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const choice = r.int(4);
      if (choice === 0) d.headers.splice(i, 1);
      else if (choice === 1) d.headers.push(['X-Amz-Date', v]);
      else d.headers[i] = [d.headers[i]![0], r.pick(['garbage', '20261301T000000Z', '20260230T000000Z', v.slice(0, 8) + 'T246060Z', v.replace('Z', ''), `${v} `, '19700101T000000Z', ''])];
    },
  },
  {
    name: 'auth.duplicate-or-drop', layer: 'auth', weight: 2,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      if (r.chance(0.5)) d.headers.splice(i, 1);
      else d.headers.splice(r.int(d.headers.length + 1), 0, [r.pick(['Authorization', 'authorization']), d.headers[i]![1]]);
    },
  },

  // --- Headers.
  {
    name: 'header.drop', layer: 'header', weight: 3,
    apply(d, r) {
      const i = r.int(d.headers.length);
      if (FRAMING_HEADERS.has(d.headers[i]![0].toLowerCase())) d.last = true;
      d.headers.splice(i, 1);
    },
  },
  {
    name: 'header.duplicate', layer: 'header', weight: 3,
    apply(d, r) {
      // No `last`: a second Content-Length must be refused; were it taken, the case would stall.
      const [name, value] = r.pick(d.headers);
      d.headers.splice(r.int(d.headers.length + 1), 0, [r.chance(0.5) ? name : name.toUpperCase(), r.chance(0.5) ? value : randomToken(r)]);
    },
  },
  {
    name: 'header.garble-name', layer: 'header', weight: 2,
    apply(d, r) {
      const i = r.int(d.headers.length);
      const [name, value] = d.headers[i]!;
      if (FRAMING_HEADERS.has(name.toLowerCase())) d.last = true;
      const at = r.int(name.length + 1);
      const garbled = r.pick([
        () => name.slice(0, at) + String.fromCharCode(r.pick([0x00, 0x20, 0x28, 0x3a, 0x7f, 0x80, 0xe9, 0x09, 0x22, 0x2c])) + name.slice(at),
        () => `${name} `,
        () => ` ${name}`,
        () => '',
        () => name.replace(/-/g, '_'),
        () => 'X'.repeat(sizeOf(r, [100], [5000])),
      ])();
      d.headers[i] = [garbled, value];
    },
  },
  {
    name: 'header.garble-value', layer: 'header', weight: 4,
    apply(d, r) {
      const i = r.int(d.headers.length);
      // No `last`: a value the server cannot read (Content-Length's too) must be refused, and
      // one it can read keeps the framing; anything else shows up as a stall.
      const [name, value] = d.headers[i]!;
      const at = r.int(value.length + 1);
      const insert = r.pick(['\u0000', '\r', '\n', '\u007f', '\u00e9', '\u00ff', Buffer.from('é😀').toString('latin1'), '\t', '  ', '\u0001', '\u001b[31m']);
      const v = r.pick([() => value.slice(0, at) + insert + value.slice(at), () => ` ${value} `, () => '', () => value + 'x'.repeat(sizeOf(r, [100, 4000], [12000]))])();
      d.headers[i] = [name, v];
    },
  },
  {
    name: 'header.obs-fold', layer: 'header', weight: 0.8,
    apply(d, r) {
      const i = r.int(d.headers.length);
      const [name, value] = d.headers[i]!;
      const at = r.int(value.length + 1);
      d.headers[i] = [name, `${value.slice(0, at)}\r\n${r.pick([' ', '\t'])}${value.slice(at)}`];
      d.last = true;
    },
  },
  {
    name: 'header.many', layer: 'header', weight: 1,
    apply(d, r) {
      for (let n = sizeOf(r, [50, 200], [1000, 2100]); n > 0; n--) d.headers.push([`X-F${n}`, r.hex(r.range(1, 16))]);
    },
  },
  {
    name: 'header.huge', layer: 'header', weight: 0.5,
    apply(d, r) {
      d.headers.push([r.pick(['X-Big', 'Cookie', 'Host', 'Authorization']), 'h'.repeat(sizeOf(r, [15_000, 16_400], [40_000, 70_000]))]);
    },
  },
  {
    name: 'header.content-type', layer: 'header', weight: 3,
    apply(d, r) {
      const v = r.pick(['text/plain', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;', 'application/jsonp', '', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json, text/plain', 'application/*', '*/*', 'application/json\u0000']);
      if (r.chance(0.2)) d.headers.push(['Content-Type', v]);
      else if (r.chance(0.1)) removeHeader(d, 'content-type');
      else setHeader(d, 'Content-Type', v);
    },
  },
  {
    name: 'header.expect', layer: 'header', weight: 1,
    apply(d, r) {
      d.headers.push(['Expect', r.pick(['100-continue', '100-Continue', 'foo', '', '200-ok'])]);
    },
  },
  {
    name: 'header.connection', layer: 'header', weight: 2,
    apply(d, r) {
      const v = r.pick(['close', 'keep-alive', 'Upgrade', 'TE', 'foo, close', 'keep-alive, Transfer-Encoding', 'Content-Length', 'upgrade, close']);
      d.headers.push(['Connection', v]);
      if (/upgrade/i.test(v)) d.headers.push(['Upgrade', r.pick(['websocket', 'h2c', 'TLS/1.2'])]);
    },
  },
  {
    name: 'header.host', layer: 'header', weight: 2,
    apply(d, r, t) {
      const v = r.pick(['evil.example', '', 'localhost:1', '[::1]', 'x'.repeat(300), `${t.host}@evil`, t.host.toUpperCase(), `${t.host}.`]);
      if (r.chance(0.3)) d.headers.push(['Host', v]);
      else if (r.chance(0.2)) removeHeader(d, 'host');
      else setHeader(d, 'Host', v);
    },
  },
  {
    name: 'header.misc', layer: 'header', weight: 2,
    apply(d, r) {
      d.headers.push(
        r.pick<[string, string]>([
          ['X-Forwarded-For', '10.0.0.1'],
          ['Forwarded', 'for=10.0.0.1;proto=https'],
          ['X-Amz-Content-Sha256', 'UNSIGNED-PAYLOAD'],
          ['Content-Encoding', 'gzip'],
          ['Accept-Encoding', 'gzip, br'],
          ['Range', 'bytes=0-1'],
          ['Trailer', 'X-Amz-Date'],
          ['TE', 'trailers'],
          ['Proxy-Connection', 'keep-alive'],
          ['Keep-Alive', 'timeout=1, max=1'],
          ['X-HTTP-Method-Override', 'GET'],
          [':authority', 'localhost'],
        ]),
      );
    },
  },

  // --- Framing: how the body is delimited. Anything but a correct chunked body is `last`.
  {
    name: 'framing.chunked', layer: 'framing', weight: 2,
    apply(d, r) {
      removeHeader(d, 'content-length');
      d.headers.push(['Transfer-Encoding', r.pick(['chunked', 'chunked', 'Chunked', 'gzip, chunked'])]);
      d.payload = chunked(d.body, r, r.chance(0.3));
    },
  },
  {
    name: 'framing.chunked-error', layer: 'framing', weight: 1.2,
    apply(d, r) {
      removeHeader(d, 'content-length');
      d.headers.push(['Transfer-Encoding', 'chunked']);
      const n = d.body.length.toString(16);
      const body = d.body.toString('latin1');
      const bad = r.pick([
        () => `zz\r\n${body}\r\n0\r\n\r\n`,
        () => `${(d.body.length + 5).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        () => `${Math.max(0, d.body.length - 3).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\r\n${body}0\r\n\r\n`,
        () => `${n}\n${body}\n0\n\n`,
        () => `-1\r\n${body}\r\n0\r\n\r\n`,
        () => `ffffffffffffffffff\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\r\n${body}\r\n`,
        () => ` ${n}\r\n${body}\r\n0\r\n\r\n`,
        () => `+${n}\r\n${body}\r\n0\r\n\r\n`,
        () => `${n};${'e'.repeat(sizeOf(r, [10, 5000], [70_000]))}\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\u0000\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\r\n${body}\r\n0\r\nX-Bad Trailer: 1\r\n\r\n`,
        () => `${n}\r\n${body}\r\n0\r\n`,
        () => `0x${n}\r\n${body}\r\n0\r\n\r\n`,
      ])();
      d.payload = Buffer.from(bad, 'latin1');
      d.last = true;
    },
  },
  {
    name: 'framing.cl-and-te', layer: 'framing', weight: 0.8,
    apply(d, r) {
      d.headers.push(['Transfer-Encoding', r.pick(['chunked', ' chunked', 'chunked ', 'identity'])]);
      if (r.chance(0.5)) d.payload = chunked(d.body, r, false);
      d.last = true;
    },
  },
  {
    name: 'framing.te-variants', layer: 'framing', weight: 0.8,
    apply(d, r) {
      removeHeader(d, 'content-length');
      const te = r.pick([['chunked, identity'], ['identity'], ['gzip'], ['xchunked'], ['chunked', 'chunked'], ['chunked\t'], ['chunked;q=1'], ['identity, chunked'], ['chunked', 'gzip'], ['\u00e9chunked']]);
      for (const v of te) d.headers.push(['Transfer-Encoding', v]);
      d.payload = chunked(d.body, r, false);
      d.last = true;
    },
  },
  {
    name: 'framing.content-length', layer: 'framing', weight: 1,
    apply(d, r) {
      const len = d.body.length;
      const v = r.pick(['-1', 'abc', `+${len}`, `${len} ${len}`, `0x${len.toString(16)}`, '99999999999999999999', '1e3', '', `${len},${len}`, `${len}, ${len + 1}`, String(Math.max(0, len - r.range(1, 10))), String(len + r.range(1, 10)), `0${len}`, `${len}\u0000`]);
      setHeader(d, 'Content-Length', v);
      d.last = true;
    },
  },
  {
    name: 'framing.duplicate-length', layer: 'framing', weight: 0.6,
    apply(d, r) {
      d.headers.push([r.pick(['Content-Length', 'content-length']), String(r.chance(0.5) ? d.body.length : d.body.length + 1)]);
      d.last = true;
    },
  },

  // --- Raw bytes of the finished request.
  {
    name: 'raw.bit-flip', layer: 'raw', weight: 0.6,
    apply(d, r) {
      const b = Buffer.from(d.bytes!);
      for (let n = r.range(1, 4); n > 0; n--) b[r.int(b.length)]! ^= 1 << r.int(8);
      d.bytes = b;
      d.last = true;
    },
  },
  {
    name: 'raw.insert', layer: 'raw', weight: 0.4,
    apply(d, r) {
      const b = d.bytes!;
      const at = r.int(b.length + 1);
      d.bytes = Buffer.concat([b.subarray(0, at), Buffer.from([r.pick(WEIRD_BYTES)]), b.subarray(at)]);
      d.last = true;
    },
  },
  {
    name: 'raw.truncate', layer: 'raw', weight: 0.4,
    apply(d, r) {
      d.bytes = d.bytes!.subarray(0, r.int(d.bytes!.length));
      d.last = true;
    },
  },
  {
    name: 'raw.line-endings', layer: 'raw', weight: 0.3,
    apply(d, r) {
      const b = d.bytes!;
      const end = b.indexOf('\r\n\r\n');
      const head = b.subarray(0, end < 0 ? b.length : end + 4).toString('latin1');
      const eol = r.pick(['\n', '\r', '\r\r\n', '\n\r']);
      d.bytes = Buffer.concat([Buffer.from(head.replace(/\r\n/g, eol), 'latin1'), b.subarray(head.length)]);
      d.last = true;
    },
  },
  {
    name: 'raw.prefix', layer: 'raw', weight: 0.2,
    apply(d, r) {
      d.bytes = Buffer.concat([Buffer.from(r.pick(['\r\n', '\r\n\r\n', '\n', ' ', '\u0000', 'GET / HTTP/1.1\r\n', '\u0016\u0003\u0001']), 'latin1'), d.bytes!]);
      d.last = true;
    },
  },
  {
    name: 'raw.pipeline', layer: 'raw', weight: 0.6,
    apply(d, r) {
      // A second request in the same write: smuggling attempts look like this.
      const tail = r.pick([() => d.bytes!, () => Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), () => r.bytes(r.range(1, 200)), () => Buffer.from('0\r\n\r\n')]);
      d.bytes = Buffer.concat([d.bytes!, tail()]);
      d.last = true;
    },
  },
];

const MUTATOR_WEIGHTS = MUTATORS.map((m) => [m, m.weight] as const);

/** Mutator names by layer, in wire order, for reports. */
export function mutatorsByLayer(): Record<string, string[]> {
  return Object.fromEntries(LAYER_ORDER.map((l) => [l, MUTATORS.filter((m) => m.layer === l).map((m) => m.name)]));
}

function chunked(body: Buffer, r: Rng, extras: boolean): Buffer {
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

// ---------------------------------------------------------------------------------------------
// Case builder.

function uuid(r: Rng): string {
  const h = r.hex(32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
}

/** A valid body for `api`; a decrypt body carries `sealed` (by default one drawn here). */
function baseBody(api: Api, r: Rng, t: FuzzTarget, sealed: SealedInput = r.pick(t.sealed)): Record<string, unknown> {
  const requestMetadata: Record<string, unknown> = {
    kmsRequestId: uuid(r),
    kmsOperation: { health: 'KmsHealthCheck', metadata: 'DescribeKey', encrypt: 'Encrypt', decrypt: 'Decrypt' }[api],
  };
  if (api !== 'health') {
    requestMetadata['awsPrincipalArn'] = `arn:aws:iam::123456789012:user/fuzz-${r.int(100)}`;
    requestMetadata['kmsKeyArn'] = `arn:aws:kms:${t.region}:123456789012:key/${uuid(r)}`;
    if (r.chance(0.3)) requestMetadata['kmsViaService'] = r.pick(['ebs', 's3', 'rds']);
  }
  const body: Record<string, unknown> = { requestMetadata };
  if (api === 'encrypt') {
    body['plaintext'] = r.bytes(r.pick([0, 1, 16, 32, 64, 256])).toString('base64');
    body['encryptionAlgorithm'] = 'AES_GCM';
    if (r.chance(0.5)) body['additionalAuthenticatedData'] = r.bytes(r.range(1, 64)).toString('base64');
    if (r.chance(0.5)) body['ciphertextDataIntegrityValueAlgorithm'] = 'SHA_256';
  } else if (api === 'decrypt') {
    const { keyId: _keyId, plaintext: _plaintext, ...fields } = sealed;
    Object.assign(body, fields, { encryptionAlgorithm: 'AES_GCM' });
  }
  return body;
}

function apiPath(api: Api, r: Rng, t: FuzzTarget, keyId: string): string {
  if (api === 'health') return `${t.uriPath}/health`;
  return `${t.uriPath}/keys/${r.chance(0.85) ? keyId : r.pick(t.keyIds)}/${api}`;
}

/** How many mutators a case gets: 0 (a valid request, so 200s keep being checked) to 4. */
const MUTATION_COUNT: ReadonlyArray<readonly [number, number]> = [[0, 8], [1, 60], [2, 22], [3, 7], [4, 3]];

export function buildCase(t: FuzzTarget, seed: number, index: number, signer: FastSigner): FuzzCase {
  const r = new Rng(caseSeed(seed, index));
  const api = r.pick(APIS);
  const sealed = r.pick(t.sealed);
  const d: Draft = {
    api,
    json: baseBody(api, r, t, sealed),
    jsonText: undefined,
    body: Buffer.alloc(0),
    method: 'POST',
    target: apiPath(api, r, t, api === 'decrypt' ? sealed.keyId : t.keyIds[0]!),
    version: 'HTTP/1.1',
    headers: [['Host', t.host], ['Content-Type', 'application/json']],
    payload: undefined,
    bytes: undefined,
    sign: { with: t.primary, region: t.region, date: t.date, extraSigned: [] },
    last: false,
  };
  const chosen: Mutator[] = [];
  for (let n = r.weighted(MUTATION_COUNT); n > 0; n--) chosen.push(r.weighted(MUTATOR_WEIGHTS));
  const run = (layer: Layer) => {
    for (const m of chosen) if (m.layer === layer) m.apply(d, r, t);
  };

  run('json');
  d.body = Buffer.from(textOf(d), 'utf8');
  run('body');
  run('line');
  run('sign');
  if (d.sign.with) {
    const path = d.target.split('?', 1)[0]!;
    const signed = signer.sign({ method: d.method, path, headers: d.headers, body: d.body }, d.sign.with, d.sign.region, d.sign.date, d.sign.extraSigned);
    d.headers.push(['X-Amz-Date', signed['x-amz-date']], ['Authorization', signed.authorization]);
  }
  d.headers.push(['Content-Length', String(d.body.length)]);
  run('auth');
  run('header');
  run('framing');
  d.bytes = serialize(d);
  run('raw');
  return {
    index,
    bytes: d.bytes,
    last: d.last,
    method: d.bytes.subarray(0, Math.max(0, d.bytes.indexOf(0x20))).toString('latin1'),
    api,
    mutators: chosen.map((m) => m.name),
    ...(api === 'decrypt' ? { plaintext: sealed.plaintext } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 response parser (incremental). Node's client would refuse some of what a broken
// server might send; this one reports it instead.

export interface RawResponse {
  statusLine: string;
  status: number;
  /** Lowercased names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
}

export class ResponseParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
  }

  get pending(): number {
    return this.buf.length;
  }

  /**
   * The next complete response; undefined when more bytes are needed. `headRequest`: the reply
   * to a HEAD has no body. `ended`: the connection closed, so a body without length ends here.
   */
  next(headRequest: boolean, ended = false): RawResponse | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return ended && this.buf.length ? this.take(this.buf.length, this.buf.toString('latin1'), Buffer.alloc(0)) : undefined;
    const head = this.buf.subarray(0, end).toString('latin1');
    const [statusLine = '', ...lines] = head.split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? 0);
    const start = end + 4;
    if ((status >= 100 && status < 200) || status === 204 || status === 304) return this.take(start, statusLine, Buffer.alloc(0), headers, status);
    if (headRequest) {
      // A reply to HEAD has no body; but a malformed HEAD answered from outside the HTTP layer
      // may get one anyway: bytes already here that are not a status line belong to it. (A case
      // whose bytes hold several requests is treated alike: the first one's method decides.)
      const rest = this.buf.subarray(start);
      const extra = rest.length && rest.indexOf('HTTP/') !== 0 ? Math.min(Number(headers['content-length'] ?? rest.length), rest.length) : 0;
      return this.take(start + extra, statusLine, rest.subarray(0, extra), headers, status);
    }
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const body = decodeChunked(this.buf.subarray(start));
      if (!body) return ended ? this.take(this.buf.length, statusLine, this.buf.subarray(start), headers, status) : undefined;
      return this.take(start + body.consumed, statusLine, body.body, headers, status);
    }
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length']);
      if (this.buf.length - start < len) return ended ? this.take(this.buf.length, statusLine, this.buf.subarray(start), headers, status) : undefined;
      return this.take(start + len, statusLine, this.buf.subarray(start, start + len), headers, status);
    }
    return ended ? this.take(this.buf.length, statusLine, this.buf.subarray(start), headers, status) : undefined;
  }

  private take(consumed: number, statusLine: string, body: Buffer, headers: Record<string, string> = {}, status = 0): RawResponse {
    this.buf = this.buf.subarray(consumed);
    return { statusLine, status, headers, body: Buffer.from(body) };
  }
}

function decodeChunked(buf: Buffer): { body: Buffer; consumed: number } | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) return { body: Buffer.concat(parts), consumed: buf.length };
    if (size === 0) {
      const end = buf.indexOf('\r\n\r\n', eol);
      return end < 0 ? undefined : { body: Buffer.concat(parts), consumed: end + 4 };
    }
    if (buf.length < eol + 2 + size + 2) return undefined;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

// ---------------------------------------------------------------------------------------------
// Reply rules: every reply is spec JSON (X3): Content-Type application/json, a JSON body, and
// either an errorName of the spec's catalog with its status (any name for 405, which the spec
// leaves unnamed) or a 200 with one API's answer.

const OK_SHAPES: Readonly<Record<string, readonly string[]>> = {
  health: ['xksProxyFleetSize', 'xksProxyVendor', 'xksProxyModel', 'ekmVendor', 'ekmFleetDetails'],
  metadata: ['keySpec', 'keyUsage', 'keyStatus'],
  encrypt: ['ciphertext', 'ciphertextMetadata', 'initializationVector', 'authenticationTag'],
  decrypt: ['plaintext'],
  healthz: ['status'],
};

/** The errorName (or `200 <api>`) of a conforming reply, or a problem description. */
export function classifyReply(res: RawResponse, headRequest: boolean): { label: string; problem?: string } {
  if (res.status === 100) return { label: '100 Continue' };
  const type = res.headers['content-type'];
  const base = `${res.status}`;
  if (!type || !/^application\/json(\s*;|$)/i.test(type)) {
    return { label: `${base} non-JSON`, problem: `content-type ${JSON.stringify(type)}: ${res.statusLine} ${res.body.toString('latin1').slice(0, 80)}` };
  }
  if (headRequest && res.body.length === 0) return { label: `${base} HEAD` };
  let json: unknown;
  try {
    json = JSON.parse(res.body.toString('utf8'));
  } catch {
    return { label: `${base} bad-JSON`, problem: `body is not JSON: ${res.body.toString('latin1').slice(0, 80)}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { label: `${base} bad-JSON`, problem: 'body is not a JSON object' };
  const o = json as Record<string, unknown>;
  if (res.status === 200) {
    const shape = Object.keys(OK_SHAPES).find((k) => OK_SHAPES[k]!.every((f) => f in o));
    return shape ? { label: `200 ${shape}` } : { label: '200 unknown', problem: `200 body of no API: ${JSON.stringify(o).slice(0, 120)}` };
  }
  const name = String(o['errorName']);
  if (res.status !== 405 && SPEC_ERRORS[name] !== res.status) return { label: `${base} ${name}`, problem: `errorName ${name} is not the spec's name for ${res.status}` };
  const msg = o['errorMessage'];
  if (msg !== undefined && (typeof msg !== 'string' || msg.length >= 512 || !/^[\x20-\x7e]*$/.test(msg))) {
    return { label: `${base} ${name}`, problem: `errorMessage is not < 512 printable ASCII: ${JSON.stringify(msg).slice(0, 80)}` };
  }
  return { label: `${base} ${name}` };
}

// ---------------------------------------------------------------------------------------------
// The runner: a pool of raw TLS connections to 127.0.0.1, one request in flight per connection,
// kept alive while the server allows it, with session resumption so reconnects stay cheap.

export type Outcome = 'reply' | 'closed' | 'hang';

export interface Exchange {
  fuzzCase: FuzzCase;
  outcome: Outcome;
  /** Every response read for this case, 100 Continue included; more than one final response
   *  means the bytes held more than one request. */
  responses: RawResponse[];
  /** No reply within the reply timeout: the client half-closed to show the server the end. */
  stalled: boolean;
}

export interface RunnerOptions {
  port: number;
  ca: Buffer;
  servername: string;
  concurrency: number;
  total: number;
  make(index: number): FuzzCase;
  onExchange(ex: Exchange): void;
  /** Time for a reply before the client half-closes (default 2000 ms). */
  replyTimeoutMs?: number;
  /** After the half-close: time for the server to answer or close (default 5000 ms). */
  closeTimeoutMs?: number;
}

export interface RunnerStats {
  connections: number;
  resumed: number;
  connectErrors: number;
}

class RawConnection {
  readonly parser = new ResponseParser();
  closed = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.parser.push(chunk);
      this.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  /** `onSession`: collect the server's session tickets from this connection. */
  static open(port: number, servername: string, secureContext: tls.SecureContext, session: Buffer | undefined, onSession?: (s: Buffer) => void): Promise<{ conn: RawConnection; resumed: boolean }> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, secureContext, session });
      // Without it, Nagle holds the half-close behind the request until a delayed ACK (40 ms).
      socket.setNoDelay(true);
      if (onSession) socket.once('session', onSession);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        resolve({ conn: new RawConnection(socket), resumed: socket.isSessionReused() });
      });
      socket.once('error', reject);
    });
  }

  /** Wait until `ready()` holds, the socket closes, or `ms` pass; true unless timed out. */
  private waitFor(ready: () => boolean, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (ready() || this.closed) return resolve(true);
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, ms);
      this.wake = () => {
        if (ready() || this.closed) {
          clearTimeout(timer);
          this.wake = undefined;
          resolve(true);
        }
      };
    });
  }

  async exchange(c: FuzzCase, replyMs: number, closeMs: number): Promise<Exchange & { reusable: boolean }> {
    const head = c.method === 'HEAD';
    const responses: RawResponse[] = [];
    const final = () => responses.some((r) => r.status >= 200 || r.status === 0);
    const drain = (ended: boolean) => {
      for (let r = this.parser.next(head, ended); r; r = this.parser.next(head, ended)) responses.push(r);
    };
    const gotFinal = () => {
      drain(false);
      return final();
    };
    this.socket.write(c.bytes);
    if (c.last) this.socket.end();
    let stalled = false;
    if (!(await this.waitFor(gotFinal, replyMs))) {
      stalled = true;
      this.socket.end();
    }
    // Wait for the end when the connection cannot carry another request.
    const closing = () => c.last || stalled || /close/i.test(responses.find((r) => r.status >= 200)?.headers['connection'] ?? '');
    if (!final() || closing()) {
      const closedInTime = await this.waitFor(() => false, closeMs);
      drain(true);
      if (!closedInTime && !final()) {
        this.socket.destroy();
        return { fuzzCase: c, outcome: 'hang', responses, stalled, reusable: false };
      }
      if (!this.closed) this.socket.destroy();
    }
    const outcome: Outcome = final() ? 'reply' : 'closed';
    return { fuzzCase: c, outcome, responses, stalled, reusable: outcome === 'reply' && !this.closed && !closing() };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export async function runCases(opts: RunnerOptions): Promise<RunnerStats> {
  const stats: RunnerStats = { connections: 0, resumed: 0, connectErrors: 0 };
  const replyMs = opts.replyTimeoutMs ?? 2000;
  const closeMs = opts.closeTimeoutMs ?? 5000;
  // One context for every connection: building one per connect (from `ca`) costs more CPU
  // than the handshake itself.
  const context = tls.createSecureContext({ ca: opts.ca });
  // A TLS 1.3 ticket may be used again; taking a fresh one now and then (rather than from every
  // connection, which costs a ticket export each time) keeps it well inside its lifetime.
  let session: Buffer | undefined;
  let sessionAt = -Infinity;
  const onSession = (s: Buffer) => {
    session = s;
    sessionAt = performance.now();
  };
  let next = 0;

  const connect = async (): Promise<RawConnection> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const { conn, resumed } = await RawConnection.open(opts.port, opts.servername, context, session, performance.now() - sessionAt > 20_000 ? onSession : undefined);
        stats.connections++;
        if (resumed) stats.resumed++;
        return conn;
      } catch (err) {
        stats.connectErrors++;
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
  };

  const worker = async () => {
    let conn: RawConnection | undefined;
    while (next < opts.total) {
      const c = opts.make(next++);
      if (!conn || conn.closed) conn = await connect();
      const ex = await conn.exchange(c, replyMs, closeMs);
      opts.onExchange(ex);
      if (!ex.reusable) {
        conn.destroy();
        conn = undefined;
      }
    }
    conn?.destroy();
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return stats;
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping of a run: counts by reply label and outcome, and problems grouped by label with
// the first few examples of each: what rebuilds the case (seed and index) and a look at its bytes.

export interface Problem {
  index: number;
  mutators: string[];
  problem: string;
  request: string;
}

/** The operation a request line names by its path's last segment, when it names one. */
function operationOf(bytes: Buffer): string | undefined {
  const line = bytes.subarray(0, Math.max(0, bytes.indexOf('\r\n'))).toString('latin1');
  const target = line.split(' ')[1] ?? '';
  if (target === '/healthz') return 'healthz';
  return /\/(health|metadata|encrypt|decrypt)$/.exec(target)?.[1];
}

export class FuzzTally {
  readonly labels = new Map<string, number>();
  readonly outcomes: Record<Outcome, number> = { reply: 0, closed: 0, hang: 0 };
  /** label -> how many replies broke a rule that way, and the first examples. */
  readonly problems = new Map<string, { count: number; examples: Problem[] }>();
  cases = 0;
  /** Cases the client believed complete that drew no reply until it half-closed. */
  stalls = 0;
  /** Cases whose bytes drew more than one final response (a second request in the payload). */
  multiResponse = 0;
  replies = 0;

  constructor(private readonly examplesPerLabel = 3) {}

  record(ex: Exchange): void {
    this.cases++;
    this.outcomes[ex.outcome]++;
    if (ex.stalled) {
      this.stalls++;
      this.problem(ex.fuzzCase, 'stalled', 'no reply until the client half-closed, though it had sent the whole request');
    }
    const head = ex.fuzzCase.method === 'HEAD';
    let finals = 0;
    // Every reply is checked: those after the first answer the extra bytes of the same case.
    for (const res of ex.responses) {
      if (res.status >= 200 || res.status === 0) finals++;
      this.replies++;
      const { label, problem } = classifyReply(res, head);
      this.labels.set(label, (this.labels.get(label) ?? 0) + 1);
      if (problem) this.problem(ex.fuzzCase, label, problem);
      // A success must answer the operation its request line names.
      const named = finals === 1 && label.startsWith('200 ') && !head ? operationOf(ex.fuzzCase.bytes) : undefined;
      if (named && label !== `200 ${named}`) this.problem(ex.fuzzCase, label, `a 200 of another operation than the request line's ${named}`);
      if (named === 'decrypt' && label === '200 decrypt' && ex.fuzzCase.plaintext !== undefined) {
        const got = (JSON.parse(res.body.toString('utf8')) as { plaintext?: unknown }).plaintext;
        if (got !== ex.fuzzCase.plaintext) this.problem(ex.fuzzCase, label, 'a 200 Decrypt with another plaintext than the one sealed');
      }
    }
    if (finals > 1) this.multiResponse++;
    if (ex.outcome === 'hang') this.problem(ex.fuzzCase, 'hang', 'no reply and no close after the half-close');
  }

  private problem(c: FuzzCase, label: string, problem: string): void {
    let entry = this.problems.get(label);
    if (!entry) this.problems.set(label, (entry = { count: 0, examples: [] }));
    entry.count++;
    if (entry.examples.length < this.examplesPerLabel) {
      entry.examples.push({ index: c.index, mutators: c.mutators, problem, request: JSON.stringify(c.bytes.subarray(0, 400).toString('latin1')) });
    }
  }

  get problemCount(): number {
    let n = 0;
    for (const { count } of this.problems.values()) n += count;
    return n;
  }

  /** Labels sorted by count, most frequent first. */
  byLabel(): Record<string, number> {
    return Object.fromEntries([...this.labels].sort((a, b) => b[1] - a[1]));
  }
}

// ---------------------------------------------------------------------------------------------
// Raw exchanges for tests that need bytes no HTTP client sends: one signed request as wire bytes,
// replies collected from any socket, and a real ClientHello to replay over plain TCP.

const defaultSigner = new FastSigner();

/** A signed XKS request as it goes on the wire (Content-Length framing unless `framing` says). */
export function signedRequest(opts: {
  host: string;
  path: string;
  body: string | Buffer;
  credential: Credential;
  region: string;
  method?: string;
  date?: Date;
  headers?: Array<[string, string]>;
}): Buffer {
  const body = Buffer.from(opts.body);
  const method = opts.method ?? 'POST';
  const headers: Array<[string, string]> = [['Host', opts.host], ['Content-Type', 'application/json'], ...(opts.headers ?? [])];
  const signed = defaultSigner.sign({ method, path: opts.path, headers, body }, opts.credential, opts.region, opts.date ?? new Date());
  headers.push(['X-Amz-Date', signed['x-amz-date']], ['Authorization', signed.authorization], ['Content-Length', String(body.length)]);
  return serialize({ method, target: opts.path, version: 'HTTP/1.1', headers, body });
}

export interface Collected {
  responses: RawResponse[];
  /** The socket closed before `ms` passed or `until` held. */
  closed: boolean;
  /** Bytes received in all, parsed or not. */
  received: number;
}

/**
 * Write `bytes` (if any) and read replies until the socket closes, `until(responses)` holds or
 * `ms` pass. The socket is left open unless it closed.
 */
export function collectReplies(socket: Duplex, bytes: Buffer | string | undefined, opts: { ms: number; until?: (r: RawResponse[]) => boolean; head?: boolean }): Promise<Collected> {
  return new Promise((resolve) => {
    const parser = new ResponseParser();
    const responses: RawResponse[] = [];
    let received = 0;
    const drain = (ended: boolean) => {
      for (let r = parser.next(opts.head ?? false, ended); r; r = parser.next(opts.head ?? false, ended)) responses.push(r);
    };
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      drain(closed);
      resolve({ responses, closed, received });
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      parser.push(chunk);
      drain(false);
      if (opts.until?.(responses)) finish(false);
    };
    const onClose = () => finish(true);
    const timer = setTimeout(() => finish(false), opts.ms);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.on('error', () => undefined);
    if (bytes !== undefined) socket.write(bytes);
  });
}

/** An open TLS connection to 127.0.0.1:`port` (rejects when the handshake fails). */
export function tlsConnect(port: number, ca: Buffer, extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...extra }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

/** The ClientHello a Node TLS client sends to `servername`, captured by a local listener. */
export function captureClientHello(servername = 'localhost'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      const client = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
      client.on('error', () => undefined);
    });
    server.on('error', reject);
  });
}

/**
 * Plain TCP to 127.0.0.1:`port`: write `bytes`, then collect what comes back until the server
 * closes, `ms` pass, or (with `firstReply`) the first bytes arrive.
 */
export function tcpExchange(port: number, bytes: Buffer, ms: number, firstReply = false): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const timer = setTimeout(() => done(false), ms);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed });
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (firstReply) done(false);
    });
    socket.on('error', () => undefined);
    socket.once('close', () => done(true));
  });
}
