/**
 * A real PROXY-protocol front on 127.0.0.1 for integration tests: net.Server -> readProxyHeader ->
 * https.Server via emit('connection'), the way the gateway wires it, plus clients that send a
 * PROXY header before TLS. The certificate is self-signed, made with openssl in a temp dir.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProxyHeader, ProxyProtocolError, type ProxyInfo } from '../../gateway/proxy-protocol.js';

export interface TestCert {
  dir: string;
  cert: Buffer;
  key: Buffer;
  remove(): void;
}

export function makeCert(): TestCert {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xks-pp-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost', '-keyout', keyFile, '-out', certFile],
    { stdio: 'ignore' },
  );
  return {
    dir,
    cert: fs.readFileSync(certFile),
    key: fs.readFileSync(keyFile),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** What the request handler saw: the connection's PROXY header and a per-connection id. */
export interface SeenRequest {
  url: string;
  connection: number;
  info: ProxyInfo | undefined;
}

export interface ProxyStack {
  port: number;
  https: https.Server;
  requests: SeenRequest[];
  /** Headers accepted, in order (health checks included). */
  headers: ProxyInfo[];
  /** For each accepted header: bytes already received after it, handed to TLS through the socket. */
  bufferedAfterHeader: number[];
  rejections: ProxyProtocolError[];
  /** How often a streamed response had to wait for 'drain' (the client read slowly). */
  drainWaits(): number;
  nextRejection(): Promise<ProxyProtocolError>;
  close(): Promise<void>;
}

const peerKey = (s: { remoteAddress?: string; remotePort?: number }): string => `${s.remoteAddress}|${s.remotePort}`;

export async function startProxyStack(cert: TestCert, opts: { timeoutMs: number; keepAliveTimeout?: number }): Promise<ProxyStack> {
  const headers: ProxyInfo[] = [];
  const bufferedAfterHeader: number[] = [];
  const rejections: ProxyProtocolError[] = [];
  const requests: SeenRequest[] = [];
  // TLS runs on the accepted socket's own TCP handle, so the TLSSocket reports the same peer
  // address and port: that pair identifies the connection and its header.
  const infoByPeer = new Map<string, ProxyInfo>();
  const connectionIds = new WeakMap<object, number>();
  let connections = 0;
  let drainWaits = 0;
  let onRejection: ((e: ProxyProtocolError) => void) | undefined;

  const server = https.createServer({ cert: cert.cert, key: cert.key, keepAlive: true, keepAliveTimeout: opts.keepAliveTimeout ?? 30_000 }, (req, res) => {
    const socket = req.socket;
    if (!connectionIds.has(socket)) connectionIds.set(socket, ++connections);
    const info = infoByPeer.get(peerKey(socket));
    requests.push({ url: req.url ?? '', connection: connectionIds.get(socket)!, info });
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
    res.end(JSON.stringify({ url: req.url, connection: connectionIds.get(socket), info: info && { ...info, tlvs: info.tlvs.map((t) => t.type) } }));
  });

  // Connection tracking (closeAllConnections, request timeouts) starts on 'listening', and this
  // server never listens itself.
  server.emit('listening');

  const front = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    readProxyHeader(socket, { timeoutMs: opts.timeoutMs }).then(
      ({ info, socket: stream }) => {
        headers.push(info);
        bufferedAfterHeader.push(stream.readableLength);
        const key = peerKey(stream);
        infoByPeer.set(key, info);
        stream.once('close', () => infoByPeer.delete(key));
        server.emit('connection', stream);
      },
      (err: ProxyProtocolError) => {
        rejections.push(err);
        onRejection?.(err);
      },
    );
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');

  return {
    port: (front.address() as net.AddressInfo).port,
    https: server,
    requests,
    headers,
    bufferedAfterHeader,
    rejections,
    drainWaits: () => drainWaits,
    nextRejection: () => new Promise((resolve) => (onRejection = resolve)),
    close: async () => {
      server.closeAllConnections();
      server.close();
      front.close();
      await once(front, 'close');
    },
  };
}

/** Deterministic bytes, so a download can be checked without keeping a copy. */
export function pattern(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 8)) & 0xff;
  return out;
}

/** Client side of a TCP connection whose first write is the PROXY header glued to the ClientHello. */
class HeaderBeforeFirstWrite extends Duplex {
  private header: Buffer | null;

  constructor(
    private readonly raw: net.Socket,
    header: Buffer,
  ) {
    super();
    this.header = header;
    raw.on('data', (d: Buffer) => {
      if (!this.push(d)) raw.pause();
    });
    raw.on('end', () => this.push(null));
    raw.on('close', () => this.destroy());
    raw.on('error', (e) => this.destroy(e));
  }

  override _read(): void {
    this.raw.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const data = this.header === null ? chunk : Buffer.concat([this.header, chunk]);
    this.header = null;
    this.raw.write(data, cb);
  }

  override _final(cb: () => void): void {
    this.raw.end(cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.raw.destroy();
    cb(err);
  }
}

export interface ClientOptions {
  ca: Buffer;
  /** Send the header in the same TCP write as the TLS ClientHello. */
  withClientHello?: boolean;
  /** Send the header in pieces of this many bytes, pausing between them. */
  pieceSize?: number;
}

/** Connect, send `header`, then complete a TLS handshake over the same connection. */
export async function connectProxied(port: number, header: Buffer, opts: ClientOptions): Promise<tls.TLSSocket> {
  const raw = net.connect(port, '127.0.0.1');
  raw.setNoDelay(true);
  await once(raw, 'connect');
  let transport: Duplex = raw;
  if (opts.withClientHello) {
    transport = new HeaderBeforeFirstWrite(raw, header);
  } else {
    const step = opts.pieceSize ?? header.length;
    for (let i = 0; i < header.length; i += step) {
      raw.write(header.subarray(i, i + step));
      if (step < header.length) await sleep(2); // separate TCP segments, separate reads
    }
  }
  const socket = tls.connect({ socket: transport, ca: opts.ca, servername: 'localhost' });
  await once(socket, 'secureConnect');
  return socket;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** HTTP/1.1 keep-alive over one already-connected TLS socket; `connectionsMade` proves reuse. */
export function overSocket(socket: tls.TLSSocket): { request(path: string, body?: Buffer): Promise<Response>; connectionsMade: () => number } {
  let made = 0;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => {
    made++;
    return socket;
  };
  return {
    connectionsMade: () => made,
    request: (p, body) =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: 'localhost', path: p, method: body ? 'POST' : 'GET', agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      }),
  };
}
