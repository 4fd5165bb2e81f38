// Raw HTTP/TLS clients for tests that need control over the bytes and the connection: a PROXY
// header before TLS (glued to the ClientHello or in pieces), HTTP/1.1 keep-alive over one
// connection. The one place for such client code in the tests.
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';

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
