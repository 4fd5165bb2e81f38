// Raw HTTP/1.1 over TLS or TCP for tests that need bytes no HTTP client sends, and a parser that
// reports what a broken server sends instead of refusing it. Used by the fuzz engine and by the
// hardening, edge-proxy, reload and security tests.
import net from 'node:net';
import type { Duplex } from 'node:stream';
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
