// Graceful stop of the API listener (SIGTERM, rolling restart). KMS holds few, long-lived
// keep-alive connections, so a stop must move them without failing a request:
// - every response from the drain on carries `Connection: close`, so a busy connection ends right
//   after an answer, never in the middle of one, and the client opens a new one elsewhere;
// - a connection idle for the whole notice period is closed between requests (one just used, or
//   with request bytes arriving, is left alone): the load balancers have moved new work away by then;
// - new connections are still accepted during the notice period, while load balancers learn of
//   the drain (agent-check `drain`, health 503); afterwards the port closes;
// - done when no connection is left, or at the drain timeout.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface DrainOptions {
  /** How long load balancers get to learn of the drain: the port stays open, idle connections too. */
  noticeMs: number;
  /** Stop waiting for connections to end after this long. */
  timeoutMs: number;
}

export interface DrainResult {
  /** Connections still open when the drain ended (0 unless the timeout passed). */
  left: number;
  ms: number;
}

interface Tracked {
  busy: number;
  lastActive: number;
  ending: boolean;
}

const TICK_MS = 100;

export function connectionDrainer(server: Server, tcp: net.Server) {
  const sockets = new Map<TLSSocket, Tracked>();
  const open = new Map<TLSSocket, Set<ServerResponse>>();
  let draining = false;

  server.on('secureConnection', (socket: TLSSocket) => {
    const t: Tracked = { busy: 0, lastActive: Date.now(), ending: false };
    sockets.set(socket, t);
    // Request bytes arriving: not idle, even before the request is parsed. Keep this listener: a
    // 'data' listener also keeps Node's HTTP parser on its JavaScript path. Without it, Node parses
    // natively ("consume"). On these handed-over TLS sockets, a 22 KB request body then came back
    // now and then as "Malformed HTTP request" (2 of 12 runs of conformance-decrypt under load).
    socket.on('data', () => (t.lastActive = Date.now()));
    socket.once('close', () => sockets.delete(socket));
  });
  // Before the request handler: a reply written at once must already carry the header.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    const t = sockets.get(socket);
    if (draining) res.setHeader('connection', 'close');
    if (!t) return;
    t.busy++;
    const set = open.get(socket) ?? new Set();
    set.add(res);
    open.set(socket, set);
    res.once('close', () => {
      t.busy--;
      t.lastActive = Date.now();
      set.delete(res);
      if (set.size === 0) open.delete(socket);
    });
  });

  const count = () => new Promise<number>((resolve) => tcp.getConnections((err, n) => resolve(err ? sockets.size : n)));

  return {
    get draining() {
      return draining;
    },
    drain(opts: DrainOptions): Promise<DrainResult> {
      draining = true;
      const started = Date.now();
      // Responses not yet begun end their connection too.
      for (const set of open.values()) for (const res of set) if (!res.headersSent) res.setHeader('connection', 'close');
      return new Promise((resolve) => {
        let portClosed = false;
        const tick = async () => {
          const now = Date.now();
          for (const [socket, t] of sockets) {
            if (t.ending || t.busy > 0 || now - Math.max(started, t.lastActive) < opts.noticeMs) continue;
            // TLS close_notify and FIN; a peer that never closes its side is cut a second later.
            t.ending = true;
            socket.end();
            setTimeout(() => socket.destroy(), 1000).unref();
          }
          if (!portClosed && now - started >= opts.noticeMs) {
            portClosed = true;
            tcp.close();
          }
          const left = await count();
          if ((portClosed && left === 0) || now - started >= opts.timeoutMs) return resolve({ left, ms: now - started });
          setTimeout(() => void tick(), TICK_MS);
        };
        void tick();
      });
    },
  };
}
