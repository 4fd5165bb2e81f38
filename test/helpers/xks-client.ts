// A KMS-like client for tests: real HTTPS to the demo, requests signed by an independent SigV4
// implementation (@smithy/signature-v4 through test/helpers/sign.ts).
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { signXksRequest } from './sign.js';
import type { DemoJson } from './demo.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export interface CallOptions {
  method?: string;
  credential?: { accessKeyId: string; secretAccessKey: string };
  /** Send without a signature. */
  unsigned?: boolean;
  headers?: Record<string, string>;
  /** Applied after signing (tampering). */
  overrideHeaders?: Record<string, string>;
  rawBody?: string | Buffer;
  endpoint?: string;
  agent?: https.Agent;
  tls?: https.RequestOptions;
  date?: Date;
  region?: string;
}

export function request(url: string, init: { method: string; headers: Record<string, string>; body?: string | Buffer; ca?: Buffer; agent?: https.Agent; tls?: https.RequestOptions }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: init.method, headers: init.headers, ca: init.ca, agent: init.agent, ...init.tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

export class XksClient {
  readonly ca: Buffer;
  readonly agent: https.Agent;
  constructor(readonly demo: DemoJson) {
    this.ca = readFileSync(demo.caFile);
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 64 });
  }

  close(): void {
    this.agent.destroy();
  }

  url(path: string, endpoint = this.demo.endpoint): string {
    return `${endpoint}${this.demo.uriPath}${path}`;
  }

  async call(path: string, body: unknown, opts: CallOptions = {}): Promise<Reply> {
    const url = path.startsWith('https://') ? path : this.url(path, opts.endpoint);
    const raw = opts.rawBody ?? JSON.stringify(body);
    const cred = opts.credential ?? { accessKeyId: this.demo.accessKeyId, secretAccessKey: this.demo.secretAccessKey };
    const headers = opts.unsigned
      ? { 'content-type': 'application/json', ...opts.headers }
      : await signXksRequest({ url, body: raw, ...cred, region: opts.region ?? this.demo.region, ...(opts.date ? { date: opts.date } : {}), ...(opts.headers ? { headers: opts.headers } : {}) });
    return request(url, { method: opts.method ?? 'POST', headers: { ...headers, ...opts.overrideHeaders }, body: raw, ca: this.ca, agent: opts.agent ?? this.agent, ...(opts.tls ? { tls: opts.tls } : {}) });
  }
}

export const meta = (extra: Record<string, unknown> = {}) => ({
  requestMetadata: {
    awsPrincipalArn: 'arn:aws:iam::123456789012:user/Alice',
    kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    kmsOperation: 'Encrypt',
    kmsRequestId: randomUUID(),
    ...extra,
  },
});

export const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
