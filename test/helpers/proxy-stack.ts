/**
 * The gateway's real API listener (gateway/listener.ts) with PROXY protocol required from
 * 127.0.0.1, serving a small test handler, for the PROXY-protocol integration tests (clients that
 * send a PROXY header before TLS: raw-http.ts). The certificate comes from the project's dev PKI.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createCa, issueServerCert } from '../../appliance/certs/issue.js';
import { connectionOf, type ConnectionInfo } from '../../gateway/connection.js';
import { createApiListener } from '../../gateway/listener.js';
import type { GatewayOptions } from '../../gateway/options.js';
import { freePorts } from './demo.js';

export interface TestCert {
  dir: string;
  /** The dev CA that issued the server certificate (SAN localhost, 127.0.0.1): what clients trust. */
  ca: Buffer;
  certFile: string;
  keyFile: string;
  remove(): void;
}

export function makeCert(): TestCert {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xks-pp-'));
  const ca = createCa('xks test CA', { days: 1 });
  const server = issueServerCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 1 });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  fs.writeFileSync(certFile, server.certPem);
  fs.writeFileSync(keyFile, server.keyPem, { mode: 0o600 });
  return { dir, ca: Buffer.from(ca.certPem), certFile, keyFile, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** What the request handler saw: the listener's facts about the connection, and a per-connection id. */
export interface SeenRequest {
  url: string;
  connection: number;
  info: ConnectionInfo | undefined;
}

export interface ProxyStack {
  port: number;
  requests: SeenRequest[];
  /** The listener's reasons for dropping connections at the PROXY header, in order. */
  rejections: string[];
  /** How often a streamed response had to wait for 'drain' (the client read slowly). */
  drainWaits(): number;
  nextRejection(): Promise<string>;
  close(): Promise<void>;
}

export interface StackOptions {
  timeoutMs: number;
  keepAliveTimeout?: number;
  /** Client sources admitted after the PROXY header (default: any). */
  allow?: string[];
  /** Answers requests instead of the default handler (an echo of the connection, and /upload). */
  handler?: RequestListener;
}

export async function startProxyStack(cert: TestCert, opts: StackOptions): Promise<ProxyStack> {
  const rejections: string[] = [];
  const requests: SeenRequest[] = [];
  const connectionIds = new WeakMap<object, number>();
  let connections = 0;
  let drainWaits = 0;
  let onRejection: ((detail: string) => void) | undefined;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    if (!connectionIds.has(socket)) connectionIds.set(socket, ++connections);
    const info = connectionOf(socket);
    requests.push({ url: req.url ?? '', connection: connectionIds.get(socket)!, info });
    if (opts.handler) return void opts.handler(req, res);
    const url = new URL(req.url ?? '/', 'https://localhost');
    if (url.pathname === '/upload') {
      // Hash the upload, then stream back `size` patterned bytes in chunks, honouring 'drain'.
      const hash = createHash('sha256');
      req.on('data', (d: Buffer) => hash.update(d));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upload-sha256': hash.digest('hex') });
        const body = pattern(Number(url.searchParams.get('size') ?? 0));
        let offset = 0;
        const pump = (): void => {
          while (offset < body.length) {
            const more = res.write(body.subarray(offset, (offset += 64 * 1024)));
            if (!more) {
              drainWaits++;
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      });
      return;
    }
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, connection: connectionIds.get(socket), info }));
  };

  const port = await freePorts(1);
  const options: GatewayOptions = {
    proxy: { regions: [] },
    server: {
      host: '127.0.0.1',
      port,
      tls: { certFile: cert.certFile, keyFile: cert.keyFile, minVersion: 'TLSv1.2' },
      keepAliveTimeoutMs: opts.keepAliveTimeout ?? 30_000,
      // The test handler authenticates nobody: idle connections live as long as keep-alive allows.
      unauthenticatedIdleTimeoutMs: opts.keepAliveTimeout ?? 30_000,
      maxHeaderBytes: 16384,
      maxBodyBytes: 65536,
      maxConnections: 1000,
      maxConnectionsPerSource: 1000,
      allow: opts.allow ?? ['0.0.0.0/0', '::/0'],
      proxyProtocol: { enabled: true, mode: 'required', trustedProxies: ['127.0.0.1/32'], timeoutMs: opts.timeoutMs },
    },
  };
  const listener = createApiListener(options, handler, {
    onReject(reason, _source, detail) {
      if (reason !== 'proxy-protocol') return;
      rejections.push(detail ?? '');
      onRejection?.(detail ?? '');
    },
  });
  await listener.listen();
  let closed: Promise<void> | undefined;
  return {
    port,
    requests,
    rejections,
    drainWaits: () => drainWaits,
    nextRejection: () => new Promise((resolve) => (onRejection = resolve)),
    close: () => (closed ??= listener.close()),
  };
}

/** Deterministic bytes, so a download can be checked without keeping a copy. */
export function pattern(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 8)) & 0xff;
  return out;
}
