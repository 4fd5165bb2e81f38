// Log in to every configured HSM node the way the service does (its own node process, its PIN
// source, its health-check key) and time a few probes (encrypt + decrypt of the health key).
// Shared by `xks check` and `xks doctor`; safe beside a running service (its own sessions).
import { performance } from 'node:perf_hooks';
import type { Config } from '../config/schema.js';
import { HsmStartError, type StartFailureKind } from '../../xks/hsm/errors.js';
import { NodeClient } from '../../xks/hsm/parent/node-client.js';

export interface NodeLogin {
  id: string;
  ok: boolean;
  /** Median round trip of the probes, ms. */
  ms?: number;
  error?: string;
  kind?: StartFailureKind;
}

const PROBES = 5;

async function loginOne(config: Config, index: number): Promise<NodeLogin> {
  const node = config.hsm.nodes[index]!;
  const client = new NodeClient(node, { healthKeyLabel: config.hsm.healthKeyLabel, callTimeoutMs: 5000, startTimeoutMs: 20_000 });
  try {
    await client.start();
    const times: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const t0 = performance.now();
      await client.call({ op: 'probe' }, 5000);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return { id: node.id, ok: true, ms: times[Math.floor(times.length / 2)]! };
  } catch (err) {
    const kind = err instanceof HsmStartError ? err.kind : 'runtime';
    return { id: node.id, ok: false, error: err instanceof Error ? err.message : String(err), kind };
  } finally {
    await client.close();
  }
}

export function loginAllNodes(config: Config): Promise<NodeLogin[]> {
  return Promise.all(config.hsm.nodes.map((_, i) => loginOne(config, i)));
}
