// Prometheus metrics, named after KMS's own CloudWatch metrics for external key stores
// (XksProxyLatency, XksProxyErrors, XksProxyHsmCount, XksProxyCertificateDaysToExpire,
// XksProxyCredentialAge, ExternalKeyStoreThrottle), in Prometheus' snake case.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RETRYABLE, type ErrorName } from './errors.js';
import type { RequestRecord } from './context.js';
import { watchHsmNodes } from './hsm-metrics.js';
import type { HsmCluster, NodeStatus } from './hsm/types.js';

export class Metrics {
  readonly registry = new Registry();
  private readonly latency = new Histogram({
    name: 'xks_proxy_latency_seconds',
    help: 'XKS request latency as seen by the proxy',
    labelNames: ['store', 'operation'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  private readonly requests = new Counter({
    name: 'xks_proxy_requests_total',
    help: 'XKS requests by outcome',
    labelNames: ['store', 'operation', 'status'],
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: 'xks_proxy_errors_total',
    help: 'XKS error replies by errorName and whether KMS may retry them',
    labelNames: ['store', 'operation', 'error_name', 'retryable'],
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'xks_proxy_connections_rejected_total',
    help: 'Connections refused before HTTP (allowlist, PROXY protocol, TLS client subject, limits)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly hsmCount = new Gauge({
    name: 'xks_proxy_hsm_count',
    help: 'HSM nodes by health state',
    labelNames: ['health'],
    registers: [this.registry],
  });

  readonly auditWriteErrors = new Counter({
    name: 'xks_proxy_audit_write_errors_total',
    help: 'Audit writes that failed (their requests were answered 500 InternalException)',
    registers: [this.registry],
  });

  private readonly throttles = new Counter({
    name: 'xks_proxy_external_key_store_throttle_total',
    help: 'Requests answered 429 ThrottlingException (key store quota or HSM capacity)',
    labelNames: ['store', 'operation'],
    registers: [this.registry],
  });

  /** Blocks in force (kill switch), by scope: key, store, all. Set by whoever applies them. */
  readonly blocksActive = new Gauge({
    name: 'xks_proxy_blocks_active',
    help: 'Blocks (kill switch) in force, by scope (key, store, all)',
    labelNames: ['scope'],
    registers: [this.registry],
  });

  /** Where the credential sets in use come from; read at scrape time, so retired ones disappear. */
  private credentialSource: () => Array<{ store: string; accessKeyId: string; createdAtMs: number }> = () => [];
  private readonly credentialAgeDays = new Gauge({
    name: 'xks_proxy_credential_age_days',
    help: 'Days since the SigV4 credential set was created (createdAt in the credentials file, else the file\'s last change)',
    labelNames: ['store', 'access_key_id'],
    registers: [this.registry],
    collect: () => {
      this.credentialAgeDays.reset();
      const now = Date.now();
      for (const c of this.credentialSource()) this.credentialAgeDays.set({ store: c.store, access_key_id: c.accessKeyId }, Math.floor(((now - c.createdAtMs) / 86_400_000) * 10) / 10);
    },
  });

  watchCredentials(source: () => Array<{ store: string; accessKeyId: string; createdAtMs: number }>): void {
    this.credentialSource = source;
  }

  readonly auditForwardDropped = new Counter({
    name: 'xks_proxy_audit_forward_dropped_total',
    help: 'Audit records not forwarded to syslog because the collector was away too long (the file has them)',
    registers: [this.registry],
  });

  readonly certificateDaysToExpire = new Gauge({
    name: 'xks_proxy_certificate_days_to_expire',
    help: 'Days until the server certificate chain expires (KMS cannot connect after that)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** The label children of one (store, operation, status): prom-client hashes the labels on every
   *  call otherwise. Bounded: stores come from the configuration, operations and statuses are few. */
  private readonly children = new Map<string, { requests: { inc(): void }; latency: { observe(v: number): void } }>();

  request(r: RequestRecord): void {
    const store = r.store ?? '-';
    const operation = r.operation ?? '-';
    const status = r.status ?? 0;
    const key = `${store}\0${operation}\0${status}`;
    let c = this.children.get(key);
    if (c === undefined) {
      c = { requests: this.requests.labels({ store, operation, status: String(status) }), latency: this.latency.labels({ store, operation }) };
      this.children.set(key, c);
    }
    c.requests.inc();
    if (r.latencyMs !== undefined) c.latency.observe(r.latencyMs / 1000);
    if (r.errorName === 'ThrottlingException') this.throttles.inc({ store, operation });
    if (r.errorName) {
      this.errors.inc({ store, operation, error_name: r.errorName, retryable: String(RETRYABLE.has(r.errorName as ErrorName)) });
    }
  }

  /** Per-node HSM series (label node), fed by the cluster. */
  watchHsm(hsm: Pick<HsmCluster, 'status' | 'onEvent' | 'onChange'>): void {
    watchHsmNodes(this.registry, hsm);
  }

  nodes(nodes: readonly NodeStatus[]): void {
    for (const h of ['ACTIVE', 'DEGRADED', 'UNAVAILABLE'] as const) this.hsmCount.set({ health: h }, nodes.filter((n) => n.health === h).length);
  }
}
