// Key consistency metrics, read from the cluster's last key check at scrape time: per key, its state
// (consistent, degraded, split, absent, unchecked) and which nodes serve it. An alert on
// `xks_proxy_hsm_key_state{state=~"split|absent"} == 1` catches a key KMS cannot use.
import { Gauge, type Registry } from 'prom-client';
import type { HsmCluster, KeyState } from './hsm/types.js';

const STATES: readonly KeyState[] = ['consistent', 'degraded', 'split', 'absent', 'unchecked'];

export function watchHsmKeys(registry: Registry, hsm: Pick<HsmCluster, 'keyReports'>): void {
  new Gauge({
    name: 'xks_proxy_hsm_key_state',
    help: 'HSM key consistency across nodes: 1 for the state the key is in (consistent, degraded, split, absent, unchecked)',
    labelNames: ['key', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of hsm.keyReports()) for (const s of STATES) this.set({ key: r.label, state: s }, r.state === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'xks_proxy_hsm_key_served',
    help: 'Whether the node serves the key (1: it holds the majority key; 0: missing, other material or kind, not checked)',
    labelNames: ['key', 'node'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of hsm.keyReports()) for (const v of r.nodes) this.set({ key: r.label, node: v.node }, v.verdict === 'ok' ? 1 : 0);
    },
  });
}
