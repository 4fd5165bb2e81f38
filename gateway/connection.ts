// Per-connection facts the request pipeline needs (the real client source after PROXY protocol,
// the VPC endpoint id from the NLB's TLV). They travel with the connection through
// AsyncLocalStorage: the TLS and HTTP layers are Node's own and take any Duplex, so the facts
// cannot be hung on the socket object they hand us.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface ConnectionInfo {
  /** The client's address: the TCP peer, or the source named by a trusted PROXY header. */
  sourceAddress: string;
  sourcePort: number | undefined;
  /** The TCP peer (the proxy, when PROXY protocol is in use). */
  peerAddress: string;
  /** AWS VPC endpoint id from the NLB's PROXY v2 TLV (0xEA/0x01), when present. */
  vpceId: string | undefined;
}

export const connectionContext = new AsyncLocalStorage<ConnectionInfo>();

export function currentConnection(): ConnectionInfo | undefined {
  return connectionContext.getStore();
}
