// A small SigV4 signer written from the spec (conformance S1-S5), not from the gateway's verifier:
// the probe is an independent check of any XKS proxy, so it must not share the code it judges.
// Every knob a tampering check needs (date, region, service, extra signed headers) is a parameter.
import { createHash, createHmac } from 'node:crypto';

export const XKS_SERVICE = 'kms-xks-proxy';

export interface SignInput {
  method: string;
  /** The Host header as sent: `host[:port]`. */
  host: string;
  /** The request path as sent; XKS URIs carry no query (T6). */
  path: string;
  body: Buffer;
  accessKeyId: string;
  secret: string;
  region: string;
  /** Default kms-xks-proxy; anything else must be refused (S2). */
  service?: string;
  date?: Date;
  /** Headers to sign besides host and x-amz-date (lowercase names), e.g. content-type as curl does. */
  signed?: Record<string, string>;
}

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** `YYYYMMDD'T'HHMMSS'Z'` (S5). */
export function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** The headers to add to the request: x-amz-date, authorization and the extra signed ones. */
export function signRequest(input: SignInput): Record<string, string> {
  const when = amzDate(input.date ?? new Date());
  const day = when.slice(0, 8);
  const service = input.service ?? XKS_SERVICE;
  const headers: Record<string, string> = { ...input.signed, host: input.host, 'x-amz-date': when };
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]!.trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [input.method, input.path, '', canonicalHeaders, signedHeaders, sha256Hex(input.body)].join('\n');
  const scope = `${day}/${input.region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', when, scope, sha256Hex(canonicalRequest)].join('\n');
  // The secret is used as the raw string, never base64-decoded (S3: RawSecretAccessKey).
  const key = hmac(hmac(hmac(hmac(`AWS4${input.secret}`, day), input.region), service), 'aws4_request');
  const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
  const { host: _host, ...sent } = headers; // the HTTP client sends Host itself
  return {
    ...sent,
    authorization: `AWS4-HMAC-SHA256 Credential=${input.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}
