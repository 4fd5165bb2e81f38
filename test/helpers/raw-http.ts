// Raw HTTP/1.1 over TLS or TCP, the one place for client code that needs control over the bytes
// and the connection: requests no HTTP client sends, a parser that reports what a broken server
// sends instead of refusing it, a PROXY header before TLS (glued to the ClientHello or in pieces),
// keep-alive over one connection. Used by the fuzz engine and the edge, hardening, PROXY-protocol,
// reload and security tests.
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { FastSigner, type Credential } from './sign.js';

const CRLF = '\r\n';

export type WireRequest = { method: string; target: string; version: string; headers: Array<[string, string]>; body: Buffer } & { payload?: Buffer | undefined };

/** A request's bytes: head in latin1 (a char is a byte), then the payload or the body. */
export function serialize(d: WireRequest): Buffer {
  let head = `${d.method} ${d.target} ${d.version}${CRLF}`;
  for (const [name, value] of d.headers) head += `${name}: ${value}${CRLF}`;
  return Buffer.concat([Buffer.from(head + CRLF, 'latin1'), d.payload ?? d.body]);
}

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

// ---- PROXY protocol clients: a header before the TLS handshake.

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
