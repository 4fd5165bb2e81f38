// What the gateway takes: the listener's address, TLS and limits, and the PROXY protocol settings.
// Declared here, by the layer that uses them; appliance/config/schema.ts validates the
// configuration into these shapes.

export interface ClientAuthOptions {
  caFile: string;
  /** Accepted client certificate subjects (CN); default: KMS's cks.kms.<region>.amazonaws.com. */
  subjects?: string[] | undefined;
  /** true: TLS 1.2 only, a refused client certificate ends the handshake with an alert. */
  alertOnReject: boolean;
}

export interface ServerTlsOptions {
  /** PEM chain: server certificate first, then intermediates. */
  certFile: string;
  keyFile: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  clientAuth?: ClientAuthOptions | undefined;
}

export interface ProxyProtocolOptions {
  enabled: boolean;
  /** required: a trusted peer must send a header; optional: it may also speak TLS directly. */
  mode: 'required' | 'optional';
  trustedProxies: string[];
  timeoutMs: number;
}

export interface ListenerOptions {
  host: string;
  port: number;
  tls: ServerTlsOptions;
  keepAliveTimeoutMs: number;
  /** Idle timeout of a connection none of whose requests has passed SigV4 yet. */
  unauthenticatedIdleTimeoutMs: number;
  headersTimeoutMs?: number | undefined;
  maxHeaderBytes: number;
  maxBodyBytes: number;
  maxConnections: number;
  maxConnectionsPerSource: number;
  allow: string[];
  proxyProtocol: ProxyProtocolOptions;
}

/** The listener's settings and the regions whose KMS client certificates it accepts by default. */
export interface GatewayOptions {
  server: ListenerOptions;
  proxy: { regions: readonly string[] };
}
