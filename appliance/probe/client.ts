// HTTP/1.1 over TLS to the XKS endpoint with undici, through a connector of our own so that every
// connection's TCP and TLS times are known (the cold-call latency, P1) and the TLS material is
// exactly what was asked for (mTLS or not). Replies are kept whole, with their timing.
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { Client, type Dispatcher } from 'undici';
import { signRequest, type SignInput } from './signer.js';
import type { ClientCert, ProbeTarget } from './target.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: unknown;
  ms: number;
}

export interface ConnectTiming {
  tcpMs: number;
  tlsMs: number;
}

/** The roots to trust and the client certificate, as SecureContext options. */
export function contextOptions(target: ProbeTarget, cert: ClientCert | undefined): tls.SecureContextOptions {
  return { ...(target.caPem ? { ca: [...tls.rootCertificates, target.caPem] } : {}), ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) };
}

const contexts = new WeakMap<ProbeTarget, Map<ClientCert | undefined, tls.SecureContext>>();

/** Built once per target and client certificate: parsing ~140 roots takes longer than a
 *  handshake and must not count as connection time. */
function secureContext(target: ProbeTarget, cert: ClientCert | undefined): tls.SecureContext {
  let byCert = contexts.get(target);
  if (!byCert) contexts.set(target, (byCert = new Map()));
  let ctx = byCert.get(cert);
  if (!ctx) {
    ctx = tls.createSecureContext(contextOptions(target, cert));
    byCert.set(cert, ctx);
  }
  return ctx;
}

/** TLS options as KMS would connect: SNI = the endpoint host, ALPN http/1.1, the given roots. */
export function tlsOptions(target: ProbeTarget, cert: ClientCert | undefined): tls.ConnectionOptions {
  const host = target.endpoint.hostname;
  return {
    host,
    port: Number(target.endpoint.port || 443),
    ...(isIP(host) ? {} : { servername: host }),
    ALPNProtocols: ['http/1.1'],
    secureContext: secureContext(target, cert),
  };
}

/** An undici connector that times TCP and TLS of each new connection. */
function timedConnector(options: tls.ConnectionOptions, onConnect: (t: ConnectTiming) => void) {
  return (_opts: unknown, callback: (err: Error | null, socket: tls.TLSSocket | null) => void) => {
    const start = performance.now();
    let tcpMs = 0;
    const socket = tls.connect(options);
    socket.once('connect', () => (tcpMs = performance.now() - start));
    socket.once('secureConnect', () => {
      onConnect({ tcpMs, tlsMs: performance.now() - start - tcpMs });
      callback(null, socket);
    });
    socket.once('error', (err) => callback(err, null));
    return socket;
  };
}

export interface SendInput {
  method?: string;
  path: string;
  body?: Buffer;
  headers?: Record<string, string>;
}

export class Connection {
  private readonly client: Client;
  /** TCP and TLS times of every connection this client opened, in order. */
  readonly connects: ConnectTiming[] = [];

  constructor(target: ProbeTarget, cert: ClientCert | undefined, opts: { keepAlive?: boolean; connections?: number } = {}) {
    this.client = new Client(target.endpoint.origin, {
      connect: timedConnector(tlsOptions(target, cert), (t) => this.connects.push(t)) as never,
      ...(opts.keepAlive === false ? { pipelining: 0 } : { keepAliveTimeout: 30_000 }),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
  }

  async send(input: SendInput): Promise<Reply> {
    const start = performance.now();
    const res = await this.client.request({
      method: (input.method ?? 'POST') as Dispatcher.HttpMethod,
      path: input.path,
      headers: input.headers ?? {},
      body: input.body,
    });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers, text, json, ms: performance.now() - start };
  }

  close(): Promise<void> {
    return this.client.destroy();
  }
}

/** How one request departs from a correct, signed one. */
export interface CallOptions {
  method?: string;
  /** Send this body verbatim instead of JSON.stringify(body). */
  rawBody?: string | Buffer;
  /** false: no Authorization at all. Otherwise overrides of the signing input. */
  sign?: false | Partial<Omit<SignInput, 'method' | 'host' | 'path' | 'body'>>;
  /** Applied after signing: a changed header must break the signature. */
  afterSigning?: (headers: Record<string, string>, body: Buffer) => { headers: Record<string, string>; body: Buffer };
  /** Leave this reply out of the every-reply checks (T1, X3): its own check judges it. */
  unrecorded?: boolean;
}

export interface RecordedReply {
  label: string;
  reply: Reply;
}

// Answers that say "not now" rather than "no": KMS retries them, and so does the probe (twice),
// so that a busy moment is reported as such instead of as a broken rule.
const TRANSIENT = new Set([429, 503]);
const RETRIES = 2;
const RETRY_PAUSE_MS = 100;

/** Signed XKS calls on one keep-alive connection; every reply is recorded for T1 and X3. */
export class XksApi {
  readonly replies: RecordedReply[] = [];
  /** Transient replies (429, 503) that were retried. */
  readonly retried: RecordedReply[] = [];

  constructor(
    readonly target: ProbeTarget,
    readonly conn: Connection,
  ) {}

  path(op: string): string {
    return `${this.target.uriPath}${op}`;
  }

  /** `path` is the whole request path; `this.path(op)` builds one under the URI path. */
  async call(label: string, path: string, body: unknown, opts: CallOptions = {}): Promise<Reply> {
    const method = opts.method ?? 'POST';
    let payload: Buffer = Buffer.from(opts.rawBody ?? (body === undefined ? '' : JSON.stringify(body)));
    let headers: Record<string, string> = { 'content-type': 'application/json' };
    if (opts.sign !== false) {
      const t = this.target;
      headers = {
        ...headers,
        ...signRequest({ method, host: t.endpoint.host, path, body: payload, accessKeyId: t.accessKeyId, secret: t.secret, region: t.region, ...opts.sign }),
      };
    }
    if (opts.afterSigning) ({ headers, body: payload } = opts.afterSigning(headers, payload));
    const request = { method, path, headers, ...(payload.length || method === 'POST' ? { body: payload } : {}) };
    let reply = await this.conn.send(request);
    for (let i = 0; i < RETRIES && TRANSIENT.has(reply.status); i++) {
      this.retried.push({ label, reply });
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
      reply = await this.conn.send(request);
    }
    if (!opts.unrecorded) this.replies.push({ label, reply });
    return reply;
  }
}

/** requestMetadata as KMS sends it for `kmsOperation` (E1, K1, H1). */
export function requestMetadata(target: ProbeTarget, kmsOperation: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (kmsOperation === 'KmsHealthCheck') return { kmsRequestId: randomUUID(), kmsOperation, ...extra };
  return {
    awsPrincipalArn: 'arn:aws:iam::111122223333:role/xks-probe',
    kmsKeyArn: `arn:aws:kms:${target.region}:111122223333:key/6f1d2c34-5b7a-4e8f-9a0b-1c2d3e4f5a6b`,
    kmsOperation,
    kmsRequestId: randomUUID(),
    ...extra,
  };
}
