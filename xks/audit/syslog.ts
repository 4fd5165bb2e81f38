// Forward audit records to a syslog collector: RFC 5424 messages over TCP or TLS with RFC 6587
// octet-counting framing. The audit file stays the source of truth: forwarding never holds a
// reply back; while the collector is away, records wait in a bounded queue (the oldest are dropped
// and counted beyond it) and the connection is retried with back-off.
import net from 'node:net';
import { hostname } from 'node:os';
import tls from 'node:tls';

export interface SyslogOptions {
  host: string;
  port: number;
  /** TLS (RFC 5425) with these trusted CAs (PEM); unset: plain TCP. */
  tls?: { ca?: string | undefined; servername?: string | undefined } | undefined;
  /** RFC 5424 APP-NAME. */
  appName?: string;
  /** Facility 13 (log audit) by default; severity is informational. */
  facility?: number;
  /** Records held while the collector is unreachable. */
  maxQueue?: number;
}

export interface SyslogEvents {
  onDropped?(count: number): void;
  onError?(err: Error): void;
}

export interface SyslogForwarder {
  send(lines: readonly string[]): void;
  close(): Promise<void>;
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export function createSyslogForwarder(opts: SyslogOptions, events: SyslogEvents = {}): SyslogForwarder {
  const pri = `<${(opts.facility ?? 13) * 8 + 6}>`;
  const header = ` ${hostname() || '-'} ${opts.appName ?? 'xks'} ${process.pid} audit - `;
  const maxQueue = opts.maxQueue ?? 10_000;
  let queue: string[] = [];
  let socket: net.Socket | undefined;
  let connected = false;
  let closed = false;
  let backoff = BACKOFF_MIN_MS;
  let timer: NodeJS.Timeout | undefined;

  const frame = (line: string) => {
    // The record itself is the MSG, byte for byte, so the collector can check the chain too.
    const time = /"time":"([^"]+)"/.exec(line)?.[1] ?? new Date().toISOString();
    const msg = `${pri}1 ${time}${header}${line}`;
    return `${Buffer.byteLength(msg)} ${msg}`;
  };
  const drain = () => {
    if (!connected || !socket || queue.length === 0) return;
    const batch = queue;
    queue = [];
    socket.write(batch.map(frame).join(''));
  };
  const connect = () => {
    if (closed) return;
    const onConnect = () => {
      connected = true;
      backoff = BACKOFF_MIN_MS;
      drain();
    };
    socket = opts.tls
      ? tls.connect({ host: opts.host, port: opts.port, ca: opts.tls.ca, servername: opts.tls.servername ?? opts.host }, onConnect)
      : net.connect({ host: opts.host, port: opts.port }, onConnect);
    socket.setKeepAlive(true, 30_000);
    socket.on('error', (err) => events.onError?.(err));
    socket.on('close', () => {
      connected = false;
      socket = undefined;
      if (closed) return;
      timer = setTimeout(connect, backoff);
      timer.unref();
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    });
    // What the collector says is of no interest (RFC 6587 is one-way).
    socket.resume();
  };
  connect();

  return {
    send(lines) {
      for (const l of lines) queue.push(l);
      if (queue.length > maxQueue) {
        const dropped = queue.length - maxQueue;
        queue = queue.slice(dropped);
        events.onDropped?.(dropped);
      }
      drain();
    },
    close: () =>
      new Promise((resolve) => {
        closed = true;
        clearTimeout(timer);
        if (!socket) return resolve();
        drain();
        socket.end(() => resolve());
        setTimeout(() => {
          socket?.destroy();
          resolve();
        }, 1000).unref();
      }),
  };
}
