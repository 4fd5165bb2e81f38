// Signs XKS requests the way KMS does, with an independent SigV4 implementation
// (@smithy/signature-v4), so tests check gateway/sigv4.ts against someone else's reading of SigV4.

import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

type SourceData = string | ArrayBuffer | ArrayBufferView;

/** SHA-256 / HMAC-SHA-256 on Node's crypto, shaped as the signer's Checksum (@smithy/types), since
 *  @aws-crypto/sha256-js is not installed. */
export class NodeSha256 {
  private readonly secret: Buffer | undefined;
  private hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.secret = secret === undefined ? undefined : toBuffer(secret);
    this.hash = this.fresh();
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }

  reset(): void {
    this.hash = this.fresh();
  }

  private fresh(): Hash | Hmac {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', this.secret);
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

export interface SignXksRequestOptions {
  /** Full https URL, e.g. https://localhost:8443/demo/kms/xks/v1/health */
  url: string;
  body: string | Buffer;
  accessKeyId: string;
  secretAccessKey: string;
  /** Default us-east-1. */
  region?: string;
  /** Default now. */
  date?: Date;
  /** Extra headers to send and sign (names as given; SigV4 lowercases them). */
  headers?: Record<string, string>;
  /** Signing service, default kms-xks-proxy; tests change it to prove it is checked. */
  service?: string;
}

/**
 * The headers to send with the request: host, x-amz-date, authorization, content-type
 * (application/json unless `headers` sets it) and any extra `headers`. Like KMS, it signs host and
 * x-amz-date plus the extra headers; the default content-type is sent unsigned.
 */
export async function signXksRequest(opts: SignXksRequestOptions): Promise<Record<string, string>> {
  const url = new URL(opts.url);
  const signer = new SignatureV4({
    service: opts.service ?? 'kms-xks-proxy',
    region: opts.region ?? 'us-east-1',
    credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
    sha256: NodeSha256,
    applyChecksum: false, // KMS sends no x-amz-content-sha256
    uriEscapePath: false, // the verifier uses the path as received (S3)
  });
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const signed = await signer.sign(
    {
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers: { host: url.host, ...opts.headers },
      body: opts.body,
    },
    { signingDate: opts.date ?? new Date() },
  );
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(signed.headers)) out[name.toLowerCase()] = value;
  out['content-type'] ??= 'application/json';
  return out;
}

// SigV4, synchronous: 100,000 signatures through an async signer would dominate the run. The
// fuzz test checks it once against @smithy/signature-v4 (test/helpers/sign.ts).

const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const amzDateOf = (date: Date) => date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

export interface Credential {
  accessKeyId: string;
  secretAccessKey: string;
}

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
