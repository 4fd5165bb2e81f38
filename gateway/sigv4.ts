// SigV4 verification of XKS API requests (conformance §4, S1-S8). Runs after routing, before any
// parsing of the body: an unauthenticated request never reaches a key or an HSM.
//
// Every failure is a 401 AuthenticationFailedException. Its message goes to KMS (and the calling
// account's logs), so it names the rule that failed and never the secret, the signing key or the
// expected signature. The optional `detail` is for our own log only and carries no secrets either.

import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { XksError } from '../xks/errors.js';

export interface SignedRequest {
  method: string;
  /** req.url as received, may include ?query. */
  path: string;
  /** Lowercased names, as Node's req.headers (under HTTP/2, put :authority in `host`). */
  headers: Record<string, string | string[] | undefined>;
  /** Node's req.rawHeaders: lets repeated headers be joined with ',' as SigV4 says (Node joins some
   *  with ', ' and drops repeats of others). */
  rawHeaders?: string[];
  /** The raw body bytes, before any JSON parsing (S3). */
  body: Buffer;
}

export interface SigV4Options {
  /** ms epoch, default Date.now(). */
  now?: number;
  /** Allowed distance between X-Amz-Date and now, default 5 minutes (S5). */
  maxSkewMs?: number;
  /** Allowed regions; undefined = any (S2). */
  regions?: readonly string[];
}

export interface SigV4Result {
  accessKeyId: string;
  region: string;
  /** The credential scope date, YYYYMMDD. */
  date: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 'kms-xks-proxy';
const TERMINATOR = 'aws4_request';
const DEFAULT_MAX_SKEW_MS = 5 * 60_000;
// A legitimate header is ~200 characters; anything far longer is rejected before any work.
const MAX_AUTHORIZATION_LENGTH = 2048;
const MAX_SIGNED_HEADERS = 32;
const MAX_ACCESS_KEY_ID_LENGTH = 128;

// Anchored patterns without nested quantifiers: linear time on any input.
const SIGNATURE = /^[0-9a-f]{64}$/;
const SCOPE_DATE = /^[0-9]{8}$/;
const REGION = /^[a-z0-9-]{1,32}$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/; // RFC 9110 token, lowercase only
const AMZ_DATE = /^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z$/;
const OWS_RUN = /[ \t]+/g;

const MSG_MALFORMED = 'Missing or malformed SigV4 Authorization header';
// One message for an unknown access key id and a wrong signature (S6: the id must not reveal
// anything): the reply does not tell a caller which ids exist.
const MSG_SIGNATURE = 'Signature does not match';
// An unknown id is checked against this secret, so it costs the same work as a known one.
const UNKNOWN_ID_SECRET = randomBytes(32).toString('base64');

function fail(message: string, detail?: string): never {
  throw new XksError('AuthenticationFailedException', message, detail);
}

/**
 * Verify the request's SigV4 signature against the secret `secretFor` returns for its access key
 * id. Several credential sets may be live at once (rotation, S8): the lookup decides which ids exist.
 * Returns who signed; throws XksError('AuthenticationFailedException') on any failure.
 */
export function verifySigV4(
  req: SignedRequest,
  secretFor: (accessKeyId: string) => string | undefined,
  opts: SigV4Options = {},
): SigV4Result {
  const auth = parseAuthorizationOf(authorizationHeader(req));

  if (auth.service !== SERVICE || auth.terminator !== TERMINATOR) {
    fail(`Credential scope must end in /${SERVICE}/${TERMINATOR}`);
  }
  if (opts.regions !== undefined && !opts.regions.includes(auth.region)) {
    fail('Credential region is not allowed', `region=${auth.region}`);
  }

  const values = signedHeaderValues(req, auth.signedHeaders);
  const amzDate = values[auth.signedHeaders.indexOf('x-amz-date')]!;
  checkDate(amzDate, auth.date, opts.now ?? Date.now(), opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS);

  const known = secretFor(auth.accessKeyId);
  const secret = known ?? UNKNOWN_ID_SECRET;

  const canonicalRequest = buildCanonicalRequest(req, auth, values);
  const scope = `${auth.date}/${auth.region}/${SERVICE}/${TERMINATOR}`;
  const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const expected = createHmac('sha256', signingKey(secret, auth.date, auth.region)).update(stringToSign).digest();
  // Both are 32 bytes: the header's signature was checked to be 64 lowercase hex digits.
  const match = timingSafeEqual(expected, Buffer.from(auth.signature, 'hex'));
  if (known === undefined) fail(MSG_SIGNATURE, `unknown accessKeyId=${auth.accessKeyId}`);
  if (!match) fail(MSG_SIGNATURE, `accessKeyId=${auth.accessKeyId}`);
  return { accessKeyId: auth.accessKeyId, region: auth.region, date: auth.date };
}

interface Authorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  /** Lowercase, strictly ascending, includes host and x-amz-date. */
  signedHeaders: string[];
  signedHeadersList: string;
  signature: string;
}

// One signer sends the same Authorization header but for its 64 signature digits, request after
// request: the last header read is kept with the signature cut out. A header that differs from it
// only in 64 lowercase hex digits at that place (which hold no ',' or '=') parses the same.
const SIGNATURE_PART = 'Signature=';
let lastShape = '';
let lastParsed: Authorization | undefined;

function parseAuthorizationOf(header: string): Authorization {
  const at = header.indexOf(SIGNATURE_PART) + SIGNATURE_PART.length;
  if (at < SIGNATURE_PART.length) return parseAuthorization(header);
  const signature = header.slice(at, at + 64);
  const shape = header.slice(0, at) + header.slice(at + 64);
  if (lastParsed !== undefined && shape === lastShape && SIGNATURE.test(signature)) return { ...lastParsed, signature };
  const parsed = parseAuthorization(header);
  lastShape = shape;
  lastParsed = parsed;
  return parsed;
}

/** `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`: each part exactly once, any order. */
function parseAuthorization(header: string): Authorization {
  if (header.length > MAX_AUTHORIZATION_LENGTH || !header.startsWith(`${ALGORITHM} `)) fail(MSG_MALFORMED);
  let credential: string | undefined;
  let signedHeadersList: string | undefined;
  let signature: string | undefined;
  // Signers differ on ", " versus ","; spaces around each part are not significant.
  for (const part of header.slice(ALGORITHM.length + 1).split(',')) {
    const item = part.trim();
    const eq = item.indexOf('=');
    const value = item.slice(eq + 1);
    switch (eq < 0 ? '' : item.slice(0, eq)) {
      case 'Credential':
        if (credential !== undefined) fail(MSG_MALFORMED);
        credential = value;
        break;
      case 'SignedHeaders':
        if (signedHeadersList !== undefined) fail(MSG_MALFORMED);
        signedHeadersList = value;
        break;
      case 'Signature':
        if (signature !== undefined) fail(MSG_MALFORMED);
        signature = value;
        break;
      default:
        fail(MSG_MALFORMED);
    }
  }
  if (credential === undefined || signedHeadersList === undefined || signature === undefined) fail(MSG_MALFORMED);
  if (!SIGNATURE.test(signature)) fail(MSG_MALFORMED);

  const scope = credential.split('/');
  if (scope.length !== 5) fail(MSG_MALFORMED);
  const [accessKeyId, date, region, service, terminator] = scope as [string, string, string, string, string];
  if (accessKeyId === '' || accessKeyId.length > MAX_ACCESS_KEY_ID_LENGTH) fail(MSG_MALFORMED);
  if (!SCOPE_DATE.test(date) || !REGION.test(region)) fail(MSG_MALFORMED);

  const signedHeaders = signedHeadersList.split(';');
  if (signedHeaders.length > MAX_SIGNED_HEADERS) fail(MSG_MALFORMED);
  for (let i = 0; i < signedHeaders.length; i++) {
    // Strictly ascending also rules out duplicates; every signer emits the list sorted.
    if (!HEADER_NAME.test(signedHeaders[i]!) || (i > 0 && signedHeaders[i - 1]! >= signedHeaders[i]!)) {
      fail(MSG_MALFORMED);
    }
  }
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
    fail('SignedHeaders must include host and x-amz-date');
  }
  if (signedHeaders.includes('authorization')) fail(MSG_MALFORMED);

  return { accessKeyId, date, region, service, terminator, signedHeaders, signedHeadersList, signature };
}

/** The Authorization header, which must occur exactly once (Node keeps the first of several). */
function authorizationHeader(req: SignedRequest): string {
  const value = req.headers.authorization;
  if (typeof value !== 'string') fail(MSG_MALFORMED);
  if (req.rawHeaders !== undefined) {
    let count = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i]!.toLowerCase() === 'authorization') count++;
    }
    if (count !== 1) fail(MSG_MALFORMED);
  }
  return value;
}

/** Canonical values of the signed headers, in `names` order; a signed header the request lacks is a 401. */
function signedHeaderValues(req: SignedRequest, names: readonly string[]): string[] {
  const values = new Array<string | undefined>(names.length);
  if (req.rawHeaders !== undefined) {
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const at = names.indexOf(raw[i]!.toLowerCase());
      if (at < 0) continue;
      const value = canonicalValue(raw[i + 1]!);
      values[at] = values[at] === undefined ? value : `${values[at]},${value}`;
    }
  } else {
    for (let at = 0; at < names.length; at++) {
      const value = req.headers[names[at]!];
      if (typeof value === 'string') values[at] = canonicalValue(value);
      else if (Array.isArray(value)) values[at] = value.map(canonicalValue).join(',');
    }
  }
  for (const value of values) if (value === undefined) fail('A signed header is missing from the request');
  return values as string[];
}

/** Trim, and collapse inner runs of HTTP whitespace (space, tab) to one space. Not String#trim:
 *  values are latin1-decoded bytes, and 0xA0 is a byte of UTF-8 text, not whitespace. */
function canonicalValue(value: string): string {
  let v = value.replace(OWS_RUN, ' ');
  if (v.startsWith(' ')) v = v.slice(1);
  if (v.endsWith(' ')) v = v.slice(0, -1);
  return v;
}

/** X-Amz-Date is YYYYMMDD'T'HHMMSS'Z', a real instant, on the credential date, within the skew. */
function checkDate(amzDate: string, scopeDate: string, now: number, maxSkewMs: number): void {
  const time = amzTime(amzDate);
  if (amzDate.slice(0, 8) !== scopeDate) fail('X-Amz-Date does not match the credential date');
  if (Math.abs(now - time) > maxSkewMs) fail('Request time is outside the allowed clock skew');
}

// KMS sends many requests within one second, all with the same X-Amz-Date: the last one read is
// kept (only the parse; the skew is checked against the clock every time).
let lastAmzDate = '';
let lastAmzTime = 0;

function amzTime(amzDate: string): number {
  if (amzDate === lastAmzDate) return lastAmzTime;
  const m = AMZ_DATE.exec(amzDate);
  if (m === null) fail('Missing or malformed X-Amz-Date');
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const time = Date.UTC(year, month - 1, day, hour, minute, second);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59 || new Date(time).getUTCDate() !== day) {
    fail('Missing or malformed X-Amz-Date');
  }
  lastAmzDate = amzDate;
  lastAmzTime = time;
  return time;
}

function buildCanonicalRequest(req: SignedRequest, auth: Authorization, values: readonly string[]): string {
  const q = req.path.indexOf('?');
  const path = q < 0 ? req.path : req.path.slice(0, q);
  const query = q < 0 ? '' : canonicalQuery(req.path.slice(q + 1));
  let canonical = `${req.method}\n${path}\n${query}\n`;
  for (let i = 0; i < values.length; i++) canonical += `${auth.signedHeaders[i]}:${values[i]}\n`;
  return `${canonical}\n${auth.signedHeadersList}\n${hash('sha256', req.body, 'hex')}`;
}

/** XKS URIs carry no query (T6), but a present one is canonicalized per SigV4: decoded, re-encoded
 *  with RFC 3986 unreserved characters only, sorted by name then value. */
function canonicalQuery(query: string): string {
  const pairs: [string, string][] = [];
  for (const item of query.split('&')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    pairs.push(eq < 0 ? [uriEncode(item), ''] : [uriEncode(item.slice(0, eq)), uriEncode(item.slice(eq + 1))]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([name, value]) => `${name}=${value}`).join('&');
}

function uriEncode(component: string): string {
  try {
    return encodeURIComponent(decodeURIComponent(component)).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  } catch {
    return fail('Malformed query string');
  }
}

/** Node decodes header bytes as latin1, so hashing as latin1 reproduces the bytes on the wire. */
function sha256Hex(text: string): string {
  return hash('sha256', Buffer.from(text, 'latin1'), 'hex');
}

// Derived keys live for a day per (secret, date, region); deriving costs four HMACs, so cache them.
// Bounded, oldest first out: a handful of live entries per credential set is the normal state.
const MAX_SIGNING_KEYS = 256;
const signingKeys = new Map<string, Buffer>();

function signingKey(secret: string, date: string, region: string): Buffer {
  const id = `${date}/${region}/${secret}`; // date and region hold no '/': the id is unambiguous
  let key = signingKeys.get(id);
  if (key === undefined) {
    const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest();
    const kRegion = createHmac('sha256', kDate).update(region).digest();
    const kService = createHmac('sha256', kRegion).update(SERVICE).digest();
    key = createHmac('sha256', kService).update(TERMINATOR).digest();
    if (signingKeys.size >= MAX_SIGNING_KEYS) signingKeys.delete(signingKeys.keys().next().value!);
    signingKeys.set(id, key);
  }
  return key;
}

/** Forget every derived signing key, e.g. after a credential set is retired. */
export function clearSigningKeyCache(): void {
  signingKeys.clear();
}
