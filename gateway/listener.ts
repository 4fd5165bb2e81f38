// The API listener: TCP accept -> PROXY header (trusted peers only) -> source allowlist, before
// any TLS work -> TLS (Node's https server, fed the connection) -> HTTP/1.1 keep-alive.
// Malformed HTTP never gets Node's bare "400 Bad Request": clientError answers spec JSON.
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { GatewayOptions } from './options.js';
import { CidrList } from '../xks/cidr-list.js';
import { connectionContext, connectionOf, trackConnection, type ConnectionInfo } from './connection.js';
import { readProxyHeader } from './proxy-protocol.js';
import { startsWithTls } from './first-byte.js';
import { allowedClientSubjects, clientCaCertificates, clientSubjectAllowed, tlsOptions } from './tls-options.js';
import { gateClientCertificate } from './client-cert-gate.js';
import { errorBody, type ErrorName } from '../xks/errors.js';
import { connectionDrainer, type DrainOptions, type DrainResult } from './drain.js';

export type RejectReason =
  | 'allowlist'
  | 'proxy-protocol'
  | 'per-source-limit'
  | 'max-connections'
  | 'unauthenticated-evicted'
  | 'tls-client-subject'
  | 'tls-client-certificate'
  | 'tls-handshake';

export interface ListenerEvents {
  /** A connection refused before any HTTP: logged and counted by the caller. */
  onReject(reason: RejectReason, source: string | undefined, detail?: string): void;
}

export interface ApiListener {
  listen(): Promise<{ address: string; port: number }>;
  /**
   * Take new settings (certificate and key, client CAs and subjects, allowlists, PROXY protocol,
   * limits, timeouts) without dropping a connection; each new connection is judged by the settings
   * in force when it arrives. Settings a live socket cannot change are refused by
   * restartOnlyChanges() first. Throws (changing nothing) when the new certificate cannot be loaded.
   */
  reconfigure(config: GatewayOptions): void;
  /** Graceful stop (gateway/drain.ts): keep answering, end every connection between requests. */
  drain(opts: DrainOptions): Promise<DrainResult>;
  close(): Promise<void>;
}

const CLIENT_ERRORS: Record<string, { status: number; name: ErrorName; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 400, name: 'ValidationException', message: 'Request headers too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 400, name: 'ValidationException', message: 'Request timed out' },
};

/**
 * Node's http server would answer a parse error with a bare 400; KMS must always get JSON (X3).
 * A pipelined request may still be answering: the error reply waits for it, so replies stay in
 * request order (the client never reads our 400 as the answer to its earlier request).
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, inFlight: { req: IncomingMessage; res: ServerResponse } | undefined): void {
  if (!socket.writable || (err.code === 'ECONNRESET' && socket.destroyed)) {
    socket.destroy();
    return;
  }
  // Wait only for an earlier request that arrived whole; a request broken mid-body is this error.
  if (inFlight && inFlight.req.complete && !inFlight.res.writableFinished) {
    inFlight.res.once('close', () => answerClientError(err, socket, undefined));
    return;
  }
  const e = CLIENT_ERRORS[err.code ?? ''] ?? { status: 400, name: 'ValidationException' as const, message: 'Malformed HTTP request' };
  const body = errorBody(e.name, e.message);
  socket.end(
    `HTTP/1.1 ${e.status} ${e.status === 400 ? 'Bad Request' : 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * What a running listener cannot take over: its socket address, the HTTP parser's header limit, and
 * whether (and how) TLS asks for client certificates. Each entry names the field; empty: all live.
 */
export function restartOnlyChanges(running: GatewayOptions, next: GatewayOptions): string[] {
  const a = running.server;
  const b = next.server;
  const changed: string[] = [];
  if (a.host !== b.host) changed.push('server.host');
  if (a.port !== b.port) changed.push('server.port');
  if (a.maxHeaderBytes !== b.maxHeaderBytes) changed.push('server.maxHeaderBytes');
  if (a.tls.minVersion !== b.tls.minVersion) changed.push('server.tls.minVersion');
  if (!a.tls.clientAuth !== !b.tls.clientAuth || a.tls.clientAuth?.alertOnReject !== b.tls.clientAuth?.alertOnReject) changed.push('server.tls.clientAuth');
  return changed;
}

export function createApiListener(config: GatewayOptions, handler: RequestListener, events: ListenerEvents): ApiListener {
  // Replaced as a whole by reconfigure(): a connection reads them once, when it arrives.
  let s = config.server;
  let allow = new CidrList(s.allow);
  let trustedProxies = new CidrList(s.proxyProtocol.trustedProxies);
  let subjects = allowedClientSubjects(config);
  const perSource = new Map<string, number>();
  const headersTimeout = s.headersTimeoutMs ?? 20_000;
  // clientAuth.alertOnReject: the gate refuses bad client certificates inside the (TLS 1.2)
  // handshake with an alert; its refusals are reported by the gate, not again as a TLS error.
  let tlsConfig = s.tls;
  let clientCas = clientCaCertificates(tlsConfig);
  const refusedByGate = new WeakSet<ConnectionInfo>();
  // Connection slots. Every accepted TCP connection holds one; those none of whose requests has
  // passed SigV4 yet are also in `unauthenticated`, oldest first. When all slots are taken, the
  // oldest unauthenticated connection gives its slot to the newcomer: clients without credentials
  // can never lock KMS out, and an authenticated KMS connection is never closed to make room.
  const open = new Set<net.Socket>();
  const unauthenticated = new Set<net.Socket>();
  const unauthIdleMs = Math.min(s.unauthenticatedIdleTimeoutMs, s.keepAliveTimeoutMs);
  const authenticatedInfo = new WeakSet<ConnectionInfo>();

  const server = https.createServer(
    {
      ...tlsOptions(s.tls),
      keepAlive: true,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // Counts from the first byte of each request, not across idle keep-alive time.
      headersTimeout,
      requestTimeout: headersTimeout + 10_000,
      // Node checks those timeouts on this interval (default 30 s): a slow client is cut near the
      // configured timeout, not up to half a minute after it.
      connectionsCheckingInterval: 1000,
      maxHeaderSize: s.maxHeaderBytes,
      requireHostHeader: false, // a missing Host fails SigV4 with a JSON 401 instead
      noDelay: true,
      handshakeTimeout: 10_000,
    },
    handler,
  );
  // Requests, not sockets, are the unit KMS pays for: no cap on requests per connection.
  server.maxRequestsPerSocket = 0;
  // The response each connection is writing, so a parse error on a pipelined request waits for it.
  const inFlight = new WeakMap<Duplex, { req: IncomingMessage; res: ServerResponse }>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const entry = { req, res };
    inFlight.set(req.socket, entry);
    res.once('close', () => {
      if (inFlight.get(req.socket) === entry) inFlight.delete(req.socket);
    });
    // Runs after Node's own 'finish' handler, which armed the long keep-alive timeout.
    res.once('finish', () => {
      const info = connectionOf(req.socket);
      if (!info || !authenticatedInfo.has(info)) req.socket.setTimeout(unauthIdleMs);
    });
  });
  // Until a request passes SigV4, a connection idle this long is closed (Node's socket timeout
  // handler destroys it); the TLS handshake and PROXY header have deadlines of their own.
  server.on('secureConnection', (socket: TLSSocket) => {
    const info = connectionOf(socket);
    if (!info || !authenticatedInfo.has(info)) socket.setTimeout(unauthIdleMs);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket, inFlight.get(socket)));
  // CONNECT is taken out of the HTTP parser for tunnelling: without a listener Node drops the
  // connection without a word. There is no tunnel here: answer it like any other method (T5).
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    const body = errorBody('MethodNotAllowed', 'Only POST is allowed on XKS API paths');
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nAllow: POST\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  // Node would answer an Expect other than 100-continue with a bare 417.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = errorBody('ValidationException', 'The Expect header is not supported');
    res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });
  server.on('tlsClientError', (err, socket) => {
    const info = connectionOf(socket);
    if (info && refusedByGate.has(info)) return socket.destroy();
    events.onReject('tls-handshake', info?.sourceAddress, (err as NodeJS.ErrnoException).code ?? err.message);
    socket.destroy();
  });
  if (s.tls.clientAuth) {
    // Runs before the HTTP layer sees the socket: a verified chain with the wrong subject is closed.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      if (!clientSubjectAllowed(socket, subjects)) {
        events.onReject('tls-client-subject', connectionOf(socket)?.sourceAddress, String(socket.getPeerCertificate()?.subject?.CN));
        socket.destroy();
      }
    });
  }
  // The https server never listens itself, so start its request-timeout checks by hand.
  server.emit('listening');

  const gate = (socket: net.Socket, info: ConnectionInfo) =>
    gateClientCertificate(socket, {
      caCerts: clientCas,
      subjects,
      onReject(reason) {
        refusedByGate.add(info);
        events.onReject('tls-client-certificate', info.sourceAddress, reason);
      },
    });

  /** `trustedLocal`: a PROXY LOCAL connection, the trusted proxy's own health check. */
  const admit = (stream: net.Socket, info: ConnectionInfo, trustedLocal = false): void => {
    info.authenticated = (tlsSocket) => {
      if (authenticatedInfo.has(info)) return;
      authenticatedInfo.add(info);
      unauthenticated.delete(stream);
      tlsSocket.setTimeout(0); // Node arms the long keep-alive after each response from now on
    };
    if (!trustedLocal && !allow.has(info.sourceAddress)) {
      events.onReject('allowlist', info.sourceAddress);
      stream.destroy();
      return;
    }
    const count = (perSource.get(info.sourceAddress) ?? 0) + 1;
    if (count > s.maxConnectionsPerSource) {
      events.onReject('per-source-limit', info.sourceAddress);
      stream.destroy();
      return;
    }
    perSource.set(info.sourceAddress, count);
    stream.once('close', () => {
      const left = (perSource.get(info.sourceAddress) ?? 1) - 1;
      if (left <= 0) perSource.delete(info.sourceAddress);
      else perSource.set(info.sourceAddress, left);
    });
    if (tlsConfig.clientAuth?.alertOnReject) {
      connectionContext.run(info, () => server.emit('connection', gate(stream, info)));
    } else {
      trackConnection(stream, info);
      server.emit('connection', stream);
    }
  };

  /** A trusted proxy's connection: read its PROXY header (or, in optional mode, see direct TLS). */
  const acceptProxied = async (socket: net.Socket, direct: ConnectionInfo): Promise<void> => {
    const timeoutMs = s.proxyProtocol.timeoutMs;
    if (s.proxyProtocol.mode === 'optional' && (await startsWithTls(socket, timeoutMs))) return admit(socket, direct);
    const { info, socket: stream } = await readProxyHeader(socket, { timeoutMs });
    // A path is not an address: the allowlist could not judge it.
    if (info.family === 'UNIX') throw new Error('PROXY v2 header of the UNIX family refused: only TCP over IPv4 or IPv6');
    // LOCAL: the proxy's own health check. It speaks for itself, and a trusted proxy's own address
    // need not be in the client allowlist (which is about the sources behind it); so it may use
    // the health path only (the pipeline refuses anything else). A header without addresses
    // (LOCAL, v1 UNKNOWN, v2 UNSPEC) proves no client path either: its TLVs are ignored.
    const local = info.command === 'LOCAL';
    const addressless = local || !info.sourceAddress;
    admit(
      stream,
      {
        sourceAddress: addressless ? direct.peerAddress : info.sourceAddress!,
        sourcePort: addressless ? direct.sourcePort : info.sourcePort,
        peerAddress: direct.peerAddress,
        vpceId: addressless ? undefined : info.vpceId,
        ...(local ? { local: true } : {}),
      },
      local,
    );
  };

  /** Take a slot for `socket`, evicting the oldest unauthenticated connection when none is free. */
  const takeSlot = (socket: net.Socket, peer: string): boolean => {
    if (open.size >= s.maxConnections) {
      const oldest = unauthenticated.values().next().value;
      if (oldest === undefined) {
        events.onReject('max-connections', peer);
        return false;
      }
      open.delete(oldest);
      unauthenticated.delete(oldest);
      events.onReject('unauthenticated-evicted', connectionOf(oldest)?.sourceAddress ?? oldest.remoteAddress);
      oldest.destroy();
    }
    open.add(socket);
    unauthenticated.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      unauthenticated.delete(socket);
    });
    return true;
  };

  const tcp = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, (socket) => {
    socket.on('error', () => socket.destroy());
    const peer = socket.remoteAddress ?? '';
    if (!takeSlot(socket, peer)) {
      socket.destroy();
      return;
    }
    const direct: ConnectionInfo = { sourceAddress: peer, sourcePort: socket.remotePort, peerAddress: peer, vpceId: undefined };
    if (!s.proxyProtocol.enabled || !trustedProxies.has(peer)) {
      // An untrusted peer on a PROXY listener is judged by its own address (and so refused
      // unless allowlisted); a header it sends fails the TLS handshake.
      admit(socket, direct);
      return;
    }
    acceptProxied(socket, direct).catch((err: Error) => {
      events.onReject('proxy-protocol', peer, err.message);
      socket.destroy();
    });
  });

  // Slots are counted by takeSlot (which can free one); this is only a backstop.
  tcp.maxConnections = s.maxConnections + 64;
  const drainer = connectionDrainer(server, tcp);

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: s.host, port: s.port }, () => {
          tcp.off('error', reject);
          const a = tcp.address() as net.AddressInfo;
          resolve({ address: a.address, port: a.port });
        });
      }),
    drain: (opts) => drainer.drain(opts),
    reconfigure(next: GatewayOptions) {
      const n = next.server;
      // Everything that can fail is read before anything changes.
      const context = tlsOptions(n.tls);
      const cas = clientCaCertificates(n.tls);
      const nextAllow = new CidrList(n.allow);
      const nextTrusted = new CidrList(n.proxyProtocol.trustedProxies);
      server.setSecureContext(context);
      clientCas = cas;
      tlsConfig = n.tls;
      subjects = allowedClientSubjects(next);
      allow = nextAllow;
      trustedProxies = nextTrusted;
      server.keepAliveTimeout = n.keepAliveTimeoutMs;
      server.headersTimeout = n.headersTimeoutMs ?? 20_000;
      server.requestTimeout = server.headersTimeout + 10_000;
      tcp.maxConnections = n.maxConnections;
      s = n;
    },
    close: () =>
      new Promise((resolve) => {
        tcp.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
        server.close();
      }),
  };
}
