// Build HaproxyRenderOptions from the appliance configuration. The configuration knows the Node
// side (port, health path, agent port, keep-alive, PROXY v2, the proxy's host name); everything
// about HAProxy's own placement comes in as overrides (CLI flags or the demo).
import type { Config } from './config/schema.js';
import { fleetMembers } from './fleet/members.js';
import {
  DEFAULT_MONITOR_PORT,
  NLB_DEFAULT_IDLE_TIMEOUT_MS,
  type Endpoint,
  type HaproxyBackend,
  type HaproxyRenderOptions,
  type HaproxyServer,
  type HaproxyVariant,
  type HealthCheckTiming,
} from '../haproxy/options.js';

export interface SniRoute {
  hostname: string;
  /** Backend name; default: one backend per host name, named after it. */
  backend?: string;
}

export interface HaproxyOverrides {
  variant?: HaproxyVariant;
  variantReason?: string;
  bind?: Endpoint;
  monitor?: Partial<Endpoint & { uri: string }>;
  acceptProxy?: boolean;
  /**
   * The Node instances (same list for every backend); default: the configuration's fleet.instances,
   * or its own server.host:port. Without an agentPort a server gets health.agentPort.
   */
  servers?: HaproxyServer[];
  /** More SNI host names besides proxy.hostname. */
  sni?: SniRoute[];
  /** The NLB's idle timeout (60-6000 s, default 350 s). */
  nlbIdleTimeoutMs?: number;
  check?: Partial<HealthCheckTiming>;
  checkCaFile?: string;
  unprivileged?: boolean;
  /** Where the unprivileged variant puts its admin socket. */
  runDir?: string;
  log?: { target: string; facility: string };
}

export const DEFAULT_CHECK: HealthCheckTiming = {
  interMs: 2000,
  fastInterMs: 1000,
  downInterMs: 2000,
  fall: 3,
  rise: 2,
  timeoutMs: 2000,
  agentInterMs: 2000,
};

/** HAProxy must outlast both the NLB's idle timeout and the Node keep-alive by this much. */
const IDLE_MARGIN_MS = 30_000;

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** be_<host name>, with the characters HAProxy names cannot hold replaced. */
export function backendNameFor(hostname: string): string {
  return `be_${hostname.toLowerCase().replace(/[^a-z0-9_-]/g, '_')}`.slice(0, 64);
}

function buildBackends(config: Config, routes: SniRoute[], servers: HaproxyServer[]): { backends: HaproxyBackend[]; defaultBackend: string } {
  const byName = new Map<string, string[]>();
  for (const r of [{ hostname: config.proxy.hostname }, ...routes]) {
    const name = r.backend ?? backendNameFor(r.hostname);
    const hosts = byName.get(name) ?? [];
    if (!hosts.some((h) => h.toLowerCase() === r.hostname.toLowerCase())) hosts.push(r.hostname);
    byName.set(name, hosts);
  }
  const backends = [...byName].map(([name, hostnames]) => ({ name, hostnames, servers }));
  return { backends, defaultBackend: backends[0]!.name };
}

export function optionsFromConfig(config: Config, overrides: HaproxyOverrides = {}): HaproxyRenderOptions {
  const unprivileged = overrides.unprivileged ?? false;
  if (unprivileged && !overrides.runDir) throw new Error('HAProxy options: the unprivileged variant needs a runDir for its admin socket');
  const agentPort = config.health.agentPort;
  const nodeAddress = WILDCARDS.has(config.server.host) ? '127.0.0.1' : config.server.host;
  const fleet: HaproxyServer[] | undefined = config.fleet
    ? fleetMembers(config).map((m) => ({
        name: m.id,
        address: m.host,
        port: m.port,
        ...(m.agentPort !== undefined ? { agentPort: m.agentPort } : {}),
        ...(m.healthPort !== undefined ? { healthPort: m.healthPort } : {}),
      }))
    : undefined;
  const healthPort = config.health.httpPort;
  const servers = (overrides.servers ?? fleet ?? [{ name: 'node1', address: nodeAddress, port: config.server.port }]).map((s) => ({
    ...s,
    ...(s.agentPort === undefined && agentPort !== undefined ? { agentPort } : {}),
    ...(s.healthPort === undefined && healthPort !== undefined ? { healthPort } : {}),
  }));
  const bind = overrides.bind ?? { address: '0.0.0.0', port: 443 };
  const nlbIdle = overrides.nlbIdleTimeoutMs ?? NLB_DEFAULT_IDLE_TIMEOUT_MS;
  return {
    variant: overrides.variant ?? '2.6',
    variantReason: overrides.variantReason ?? (overrides.variant ? 'it was asked for' : 'Debian 12 ships HAProxy 2.6'),
    bind,
    acceptProxy: overrides.acceptProxy ?? true,
    sendProxy: config.server.proxyProtocol.enabled,
    monitor: {
      address: overrides.monitor?.address ?? bind.address,
      port: overrides.monitor?.port ?? DEFAULT_MONITOR_PORT,
      uri: overrides.monitor?.uri ?? config.health.path,
    },
    ...buildBackends(config, overrides.sni ?? [], servers),
    healthPath: config.health.path,
    ...(overrides.checkCaFile !== undefined ? { checkCaFile: overrides.checkCaFile } : {}),
    plainHttpCheck: config.server.tls.clientAuth !== undefined,
    check: { ...DEFAULT_CHECK, ...overrides.check },
    timeouts: {
      connectMs: 1000,
      idleMs: Math.max(config.server.keepAliveTimeoutMs, nlbIdle) + IDLE_MARGIN_MS,
      inspectDelayMs: 5000,
      hardStopAfterMs: 60_000,
    },
    statsSocket: unprivileged ? `${overrides.runDir}/haproxy-admin.sock` : '/run/haproxy/admin.sock',
    log: overrides.log ?? (unprivileged ? { target: 'stderr', facility: 'local0' } : { target: '/dev/log', facility: 'local0' }),
    unprivileged,
    // Unprivileged processes usually cannot raise the file descriptor limit a maxconn needs.
    ...(unprivileged ? {} : { maxconn: config.server.maxConnections }),
    drainNoticeMs: config.server.drain.noticeMs,
    vpceAllowlist: config.keyStores.some((s) => (s.vpcEndpoints?.length ?? 0) > 0),
  };
}
