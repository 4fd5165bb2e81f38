// GetHealthStatus (spec §2.6): the background prober's cached view of every HSM node (at most a
// minute old, H4); never subject to secondary authorization (H5); an error, not 200, when no node
// can serve (H6).
import { XksError } from '../errors.js';
import { parseRequestMetadata } from '../validate.js';
import { noteMetadata } from './key-request.js';
import type { XksDeps, XksRequest } from '../context.js';
import type { NodeStatus } from '../hsm/types.js';

const MAX_PROBE_AGE_MS = 60_000;
export const PROXY_MODEL = 'xks-appliance 0.1';

/** A node whose last good probe is older than a minute is not reported ACTIVE (H4). */
export function reportedHealth(node: NodeStatus, now = Date.now()): NodeStatus['health'] {
  if (node.health !== 'UNAVAILABLE' && (node.lastProbeAt === undefined || now - node.lastProbeAt > MAX_PROBE_AGE_MS)) {
    return 'UNAVAILABLE';
  }
  return node.health;
}

export function canServe(nodes: readonly NodeStatus[]): boolean {
  return nodes.some((n) => reportedHealth(n) !== 'UNAVAILABLE');
}

export async function getHealthStatus(req: XksRequest, deps: XksDeps): Promise<object> {
  const metadata = parseRequestMetadata(req.body, 'health');
  noteMetadata(req, metadata);
  const nodes = deps.hsm.status();
  if (!canServe(nodes)) throw new XksError('DependencyTimeoutException', 'No HSM node is available');
  return {
    xksProxyFleetSize: deps.proxy.fleetSize,
    xksProxyVendor: deps.proxy.vendor,
    xksProxyModel: PROXY_MODEL,
    ekmVendor: deps.hsmConfig.vendor,
    ekmFleetDetails: nodes.slice(0, 10).map((n) => ({ id: n.id, model: n.model, healthStatus: reportedHealth(n) })),
  };
}
