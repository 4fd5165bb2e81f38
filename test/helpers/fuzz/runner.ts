// The runner: a pool of raw TLS connections to 127.0.0.1, one request in flight per connection,
// kept alive while the server allows it, with session resumption so reconnects stay cheap.
import tls from 'node:tls';
import { type RawResponse, ResponseParser } from '../raw-http.js';
import type { FuzzCase } from './draft.js';

export type Outcome = 'reply' | 'closed' | 'hang';

export interface Exchange {
  fuzzCase: FuzzCase;
  outcome: Outcome;
  /** Every response read for this case, 100 Continue included; more than one final response
   *  means the bytes held more than one request. */
  responses: RawResponse[];
  /** No reply within the reply timeout: the client half-closed to show the server the end. */
  stalled: boolean;
}

export interface RunnerOptions {
  port: number;
  ca: Buffer;
  servername: string;
  concurrency: number;
  total: number;
  make(index: number): FuzzCase;
  onExchange(ex: Exchange): void;
  /** Time for a reply before the client half-closes (default 2000 ms). */
  replyTimeoutMs?: number;
  /** After the half-close: time for the server to answer or close (default 5000 ms). */
  closeTimeoutMs?: number;
}

export interface RunnerStats {
  connections: number;
  resumed: number;
  connectErrors: number;
}

export class RawConnection {
  readonly parser = new ResponseParser();
  closed = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.parser.push(chunk);
      this.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  /** `onSession`: collect the server's session tickets from this connection. */
  static open(port: number, servername: string, secureContext: tls.SecureContext, session: Buffer | undefined, onSession?: (s: Buffer) => void): Promise<{ conn: RawConnection; resumed: boolean }> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, secureContext, session });
      // Without it, Nagle holds the half-close behind the request until a delayed ACK (40 ms).
      socket.setNoDelay(true);
      if (onSession) socket.once('session', onSession);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        resolve({ conn: new RawConnection(socket), resumed: socket.isSessionReused() });
      });
      socket.once('error', reject);
    });
  }

  /** Wait until `ready()` holds, the socket closes, or `ms` pass; true unless timed out. */
  private waitFor(ready: () => boolean, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (ready() || this.closed) return resolve(true);
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, ms);
      this.wake = () => {
        if (ready() || this.closed) {
          clearTimeout(timer);
          this.wake = undefined;
          resolve(true);
        }
      };
    });
  }

  async exchange(c: FuzzCase, replyMs: number, closeMs: number): Promise<Exchange & { reusable: boolean }> {
    const head = c.method === 'HEAD';
    const responses: RawResponse[] = [];
    const final = () => responses.some((r) => r.status >= 200 || r.status === 0);
    const drain = (ended: boolean) => {
      for (let r = this.parser.next(head, ended); r; r = this.parser.next(head, ended)) responses.push(r);
    };
    const gotFinal = () => {
      drain(false);
      return final();
    };
    this.socket.write(c.bytes);
    if (c.last) this.socket.end();
    let stalled = false;
    if (!(await this.waitFor(gotFinal, replyMs))) {
      stalled = true;
      this.socket.end();
    }
    // Wait for the end when the connection cannot carry another request.
    const closing = () => c.last || stalled || /close/i.test(responses.find((r) => r.status >= 200)?.headers['connection'] ?? '');
    if (!final() || closing()) {
      const closedInTime = await this.waitFor(() => false, closeMs);
      drain(true);
      if (!closedInTime && !final()) {
        this.socket.destroy();
        return { fuzzCase: c, outcome: 'hang', responses, stalled, reusable: false };
      }
      if (!this.closed) this.socket.destroy();
    }
    const outcome: Outcome = final() ? 'reply' : 'closed';
    return { fuzzCase: c, outcome, responses, stalled, reusable: outcome === 'reply' && !this.closed && !closing() };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export async function runCases(opts: RunnerOptions): Promise<RunnerStats> {
  const stats: RunnerStats = { connections: 0, resumed: 0, connectErrors: 0 };
  const replyMs = opts.replyTimeoutMs ?? 2000;
  const closeMs = opts.closeTimeoutMs ?? 5000;
  // One context for every connection: building one per connect (from `ca`) costs more CPU
  // than the handshake itself.
  const context = tls.createSecureContext({ ca: opts.ca });
  // A TLS 1.3 ticket may be used again; taking a fresh one now and then (rather than from every
  // connection, which costs a ticket export each time) keeps it well inside its lifetime.
  let session: Buffer | undefined;
  let sessionAt = -Infinity;
  const onSession = (s: Buffer) => {
    session = s;
    sessionAt = performance.now();
  };
  let next = 0;

  const connect = async (): Promise<RawConnection> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const { conn, resumed } = await RawConnection.open(opts.port, opts.servername, context, session, performance.now() - sessionAt > 20_000 ? onSession : undefined);
        stats.connections++;
        if (resumed) stats.resumed++;
        return conn;
      } catch (err) {
        stats.connectErrors++;
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
  };

  const worker = async () => {
    let conn: RawConnection | undefined;
    while (next < opts.total) {
      const c = opts.make(next++);
      if (!conn || conn.closed) conn = await connect();
      const ex = await conn.exchange(c, replyMs, closeMs);
      opts.onExchange(ex);
      if (!ex.reusable) {
        conn.destroy();
        conn = undefined;
      }
    }
    conn?.destroy();
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return stats;
}
