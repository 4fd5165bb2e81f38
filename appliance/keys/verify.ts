// The key consistency check of the running service, as a one-off: start the HSM nodes the way the
// service does (own processes, own sessions: safe beside a running service), check every configured
// key on every node, report, stop. Used by `xks keys verify|list|show`, `xks check` and `xks doctor`.
import pino from 'pino';
import type { Config } from '../config/schema.js';
import { configuredLabels } from '../service.js';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import type { KeyReport, NodeStatus } from '../../xks/hsm/types.js';
import { describe } from '../../xks/hsm/parent/key-check.js';

export interface KeysCheck {
  reports: KeyReport[];
  /** Every node, with why it is out when it could not be asked. */
  nodes: NodeStatus[];
}

export async function checkConfiguredKeys(config: Config): Promise<KeysCheck> {
  // Report every node that logs in, whatever the service's minimum: this is a diagnosis.
  const cluster = createHsmCluster({ ...config.hsm, minNodesAtStart: 1 }, pino({ level: 'silent' }));
  try {
    await cluster.setKeyLabels(configuredLabels(config));
    await cluster.start({ refuseSplit: false });
    return { reports: cluster.keyReports(), nodes: cluster.status() };
  } finally {
    await cluster.close();
  }
}

/** Keys whose state is not one truth on every node that answered, and nodes that could not be asked. */
export function problems(check: KeysCheck): string[] {
  const out = check.reports.filter((r) => r.state !== 'consistent').map((r) => `${r.state.toUpperCase()}: ${r.message}`);
  for (const n of unchecked(check)) out.push(`NOT CHECKED: HSM node ${n.id} did not start${n.detail ? ` (${n.detail})` : ''}`);
  return out;
}

/**
 * Configured keys KMS cannot use: the majority's key is not an AES-256 secret key (RSA, EC, HMAC,
 * AES-128...). A key whose token flags allow less than its configuration is reported by
 * GetKeyMetadata with the usage it really has; that is a choice, not an error.
 */
export function unusable(config: Config, check: KeysCheck): string[] {
  const byLabel = new Map(check.reports.map((r) => [r.label, r]));
  return config.keyStores.flatMap((s) =>
    s.keys.flatMap((k) => {
      const info = byLabel.get(k.label)?.nodes.find((v) => v.verdict === 'ok')?.info;
      if (!info || (info.objectClass === 'SECRET_KEY' && info.keySpec === 'AES_256')) return [];
      return [`${s.name}/${k.id}: label "${k.label}" is ${describe(info)}, not an AES_256 secret key: KMS cannot use it`];
    }),
  );
}

/** Nodes that were not running when the keys were checked. */
function unchecked(check: KeysCheck): NodeStatus[] {
  const asked = new Set(check.reports.flatMap((r) => r.nodes.map((v) => v.node)));
  return check.nodes.filter((n) => !asked.has(n.id));
}

/** One line per key and node: what the node holds under the label, and its verdict. */
export function formatReport(check: KeysCheck, labels?: ReadonlySet<string>): string {
  const lines: string[] = [];
  for (const r of check.reports) {
    if (labels && !labels.has(r.label)) continue;
    lines.push(`key "${r.label}": ${r.state}${r.materialChecked ? ' (material compared across nodes)' : r.state === 'absent' ? '' : ' (material not comparable: not an AES key allowing encrypt and decrypt)'}`);
    for (const v of r.nodes) {
      const what = v.info ? `${v.info.keySpec} ${v.info.objectClass}, encrypt ${v.info.encrypt ? 'yes' : 'no'}, decrypt ${v.info.decrypt ? 'yes' : 'no'}` : 'nothing';
      lines.push(`  ${v.node.padEnd(12)} ${v.verdict.padEnd(14)} ${what}${v.verdict !== 'ok' && v.detail ? `  (${v.detail})` : ''}`);
    }
  }
  for (const n of unchecked(check)) lines.push(`HSM node ${n.id}: did not start, not checked${n.detail ? ` (${n.detail})` : ''} (see xks check)`);
  return lines.join('\n') + '\n';
}
