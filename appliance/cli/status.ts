// `xks status`: the running instance as an operator reads it, times as "3 s ago (ISO)";
// `--json` gives the structure the control socket returns.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { controlCall } from '../control/client.js';

/** "3 s ago", "4 min ago", "2 h ago", "5 d ago"; "in 3 s" for a time ahead. */
export function ago(isoTime: string | undefined, now = Date.now()): string {
  if (!isoTime) return 'never';
  const ms = now - Date.parse(isoTime);
  const abs = Math.abs(ms);
  const text =
    abs < 60_000 ? `${Math.round(abs / 1000)} s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)} min` : abs < 172_800_000 ? `${Math.round(abs / 3_600_000)} h` : `${Math.round(abs / 86_400_000)} d`;
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

type Obj = Record<string, any>;

/** One kill-switch block in words: target, who, when, why (status and block/unblock print it). */
export function blockLine(b: Obj, now = Date.now()): string {
  const target = b.scope === 'all' ? 'everything' : b.scope === 'store' ? `key store ${b.store}` : `key ${b.store}/${b.keyId}`;
  return `${target}  by ${b.operator ?? '?'} ${ago(b.at, now)}${b.reason ? `  reason: ${b.reason}` : ''}`;
}

export function formatStatus(s: Obj, now = Date.now()): string {
  const lines = [
    `xks-appliance ${s.version}, mode ${s.mode}, pid ${s.pid}, started ${ago(s.startedAt, now)} (${s.startedAt})`,
    `  config ${s.configFile}`,
    `  API ${s.api?.address}:${s.api?.port}; agent-check answers "${s.agent}"${s.draining ? '; DRAINING' : ''}`,
  ];
  const c: Obj | undefined = s.certificate;
  if (c) {
    lines.push(`Certificate: ${c.subject}, expires ${c.notAfter?.slice(0, 10)} (${c.daysToExpire} days left), chain ends at ${c.anchor}`);
    if (c.staging) lines.push(`  ${c.staging}`);
  }
  lines.push('HSM nodes:');
  for (const n of (s.nodes ?? []) as Obj[]) {
    lines.push(`  ${n.id}  ${n.health}  pid ${n.pid ?? '-'}  last probe ${ago(n.lastProbeAt, now)}${n.lastProbeAt ? ` (${n.lastProbeAt})` : ''}  calls ${n.calls ?? 0}`);
  }
  lines.push('Key stores:');
  for (const k of (s.keyStores ?? []) as Obj[]) {
    const changed = k.credentialsChangedAt ? `, file changed ${ago(k.credentialsChangedAt, now)}` : '';
    lines.push(`  ${k.name}  ${k.uriPath}  ${k.enabled ? 'enabled' : 'DISABLED'}  ${k.keys} key(s)  ${k.credentials} credential set(s)${changed}`);
    for (const c of (k.credentialAges ?? []) as Obj[]) lines.push(`    credential ${c.accessKeyId}  made ${ago(c.createdAt, now)}`);
  }
  const a: Obj | undefined = s.audit;
  if (a) lines.push(`Audit: ${a.file}${a.head ? `, last record seq ${a.head.seq}` : ''}`);
  if (Array.isArray(s.blocks)) {
    const blocks = s.blocks as Obj[];
    lines.push(blocks.length ? 'Kill switch blocks (xks unblock lifts one):' : 'Kill switch: no block in force');
    for (const b of blocks) lines.push(`  ${blockLine(b, now)}`);
  }
  if (s.stopping) lines.push('STOPPING: a graceful stop is under way (connections are being drained)');
  // Sections other parts of the appliance add (blocks, ...), shown as they come.
  const known = new Set(['version', 'mode', 'pid', 'configFile', 'startedAt', 'api', 'draining', 'health', 'agent', 'nodes', 'certificate', 'keyStores', 'audit', 'stopping', 'blocks']);
  for (const [name, value] of Object.entries(s)) if (!known.has(name)) lines.push(`${name}: ${JSON.stringify(value)}`);
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('status')
    .description('Show the running appliance: certificate days left, HSM nodes (health, pid, last probe), key stores and credentials, drain state')
    .requiredOption('--config <FILE>', 'configuration file of the running appliance')
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const status = await controlCall(resolve(o.config), '/status');
      process.stdout.write(o.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
    });
}
