// The fleet as the configuration names it: every proxy instance configured to serve, with the
// addresses HAProxy, the NLB and `xks status --fleet` reach it at. Without a fleet list the
// configuration describes a fleet of one: this instance.
import type { Config } from '../config/schema.js';

export interface FleetMember {
  id: string;
  host: string;
  /** The XKS API (TLS) port. */
  port: number;
  /** HAProxy agent-check port (up / drain / down). */
  agentPort: number | undefined;
  /** Plain-HTTP health port. */
  healthPort: number | undefined;
  metricsPort: number | undefined;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

export function fleetMembers(config: Config): FleetMember[] {
  const host = WILDCARDS.has(config.server.host) ? '127.0.0.1' : config.server.host;
  const list = config.fleet?.instances ?? [{ id: 'xks-1', host }];
  return list.map((i) => ({
    id: i.id,
    host: i.host,
    port: i.port ?? config.server.port,
    agentPort: i.agentPort ?? config.health.agentPort,
    healthPort: i.healthPort ?? config.health.httpPort,
    metricsPort: i.metricsPort ?? config.metrics.port,
  }));
}
