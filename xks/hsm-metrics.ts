// Per-node HSM metrics (label `node`): state, call latency, calls in flight, session pool size,
// failures by class, process restarts and failovers away from the node. Fed by the cluster's
// event hook (cheap counters on the hot path) and read from its status at scrape time.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { HsmCluster, HsmEvent, NodeHealth, NodeStatus } from './hsm/types.js';

const STATES: readonly NodeHealth[] = ['ACTIVE', 'DEGRADED', 'UNAVAILABLE'];
/** Outcomes that are answers about the request (a bad ciphertext, a key's usage), not node failures. */
const ANSWERS: ReadonlySet<string> = new Set(['invalid-ciphertext', 'key-usage']);

export function watchHsmNodes(registry: Registry, hsm: Pick<HsmCluster, 'status' | 'onEvent' | 'onChange'>): void {
  const registers = [registry];
  const state = new Gauge({
    name: 'xks_proxy_hsm_node_state',
    help: 'HSM node health: 1 for the state the node is in (ACTIVE, DEGRADED, UNAVAILABLE), 0 for the others',
    labelNames: ['node', 'state'],
    registers,
  });
  const latency = new Histogram({
    name: 'xks_proxy_hsm_latency_seconds',
    help: 'HSM call latency per node and operation (every attempt, failed ones too)',
    labelNames: ['node', 'operation'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5],
    registers,
  });
  const failures = new Counter({
    name: 'xks_proxy_hsm_failures_total',
    help: 'HSM call failures per node by class (timeout, down, session, device, internal, key-missing, ...)',
    labelNames: ['node', 'class'],
    registers,
  });
  const restarts = new Counter({
    name: 'xks_proxy_hsm_node_restarts_total',
    help: 'HSM node processes started again after they died or were killed',
    labelNames: ['node'],
    registers,
  });
  const failovers = new Counter({
    name: 'xks_proxy_hsm_failovers_total',
    help: 'Requests moved to another HSM node after a failure on this one',
    labelNames: ['node'],
    registers,
  });
  const perNode = (name: string, help: string, value: (n: NodeStatus) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['node'],
      registers,
      collect() {
        for (const n of hsm.status()) this.set({ node: n.id }, value(n) ?? 0);
      },
    });
  perNode('xks_proxy_hsm_in_flight', 'HSM calls in flight per node', (n) => n.inFlight);
  perNode('xks_proxy_hsm_sessions', 'Logged-in sessions in the node process pool', (n) => n.sessions);

  const setStates = (nodes: readonly NodeStatus[]) => {
    for (const n of nodes) for (const s of STATES) state.set({ node: n.id, state: s }, n.health === s ? 1 : 0);
  };
  setStates(hsm.status());
  hsm.onChange(setStates);
  // Series exist from the start, so a rate() over a quiet node is 0, not absent.
  for (const n of hsm.status()) {
    restarts.inc({ node: n.id }, 0);
    failovers.inc({ node: n.id }, 0);
  }
  hsm.onEvent((e: HsmEvent) => {
    if (e.kind === 'call') {
      latency.observe({ node: e.node, operation: e.op }, e.ms / 1000);
      if (e.outcome !== 'ok' && !ANSWERS.has(e.outcome)) failures.inc({ node: e.node, class: e.outcome });
    } else if (e.kind === 'failover') failovers.inc({ node: e.node });
    else restarts.inc({ node: e.node });
  });
}
