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
