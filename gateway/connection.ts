// Per-connection facts the request pipeline needs (the real client source after PROXY protocol,
// the VPC endpoint id from the NLB's TLV). Node's TLS and HTTP layers hand us their own socket, so
// the facts are found again from it: by the TCP peer address and port, which a TLS socket over a
// TCP socket reports (a map lookup, no async hooks). TLS over a JS stream (the mTLS certificate
// gate) reports no address: those connections carry the facts in AsyncLocalStorage instead, whose
// hooks cost every promise in the process, so nothing else uses it (measured: ~20% of req/s).
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Socket } from 'node:net';

export interface ConnectionInfo {
  /** The client's address: the TCP peer, or the source named by a trusted PROXY header. */
  sourceAddress: string;
  sourcePort: number | undefined;
  /** The TCP peer (the proxy, when PROXY protocol is in use). */
  peerAddress: string;
  /** AWS VPC endpoint id from the NLB's PROXY v2 TLV (0xEA/0x01), when present. */
  vpceId: string | undefined;
  /** A PROXY v2 LOCAL connection: the trusted proxy's own health check, for the health path only. */
  local?: boolean;
  /** Set by the listener: the pipeline calls it when a request on this connection passed SigV4,
   *  which earns the connection the long keep-alive and protects its slot. */
  authenticated?(socket: Socket): void;
}

export const connectionContext = new AsyncLocalStorage<ConnectionInfo>();

const byPeer = new Map<string, ConnectionInfo>();
const peerKey = (address: string | undefined, port: number | undefined) => `${address}|${port}`;

/** Remember `info` for the life of this TCP connection. */
export function trackConnection(socket: Socket, info: ConnectionInfo): void {
  const key = peerKey(socket.remoteAddress, socket.remotePort);
  byPeer.set(key, info);
  socket.once('close', () => {
    if (byPeer.get(key) === info) byPeer.delete(key);
  });
}

/** Found once per TLS socket, not once per request on it (building the key cost ~1% of a request). */
const bySocket = new WeakMap<object, ConnectionInfo>();

/** The facts of the connection a TLS socket (or a request's socket) belongs to. */
export function connectionOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined } | undefined): ConnectionInfo | undefined {
  if (socket === undefined) return connectionContext.getStore();
  let info = bySocket.get(socket);
  if (info) return info;
  if (socket.remoteAddress !== undefined) {
    info = byPeer.get(peerKey(socket.remoteAddress, socket.remotePort));
    if (info) {
      bySocket.set(socket, info);
      return info;
    }
  }
  return connectionContext.getStore();
}
