// `xks block` / `xks unblock`: the kill switch, at key, key-store or global scope. The running
// appliance writes the block to every HSM node; every instance on the same HSMs enforces it.
import { type Command } from 'commander';
import { resolve } from 'node:path';
import { controlCall } from '../control/client.js';
import { CliError } from './errors.js';
import { operatorOptions, type OperatorOptions } from './operator.js';
import { blockLine } from './status.js';

interface BlockOptions extends OperatorOptions {
  config: string;
  key?: string;
  store?: string;
  all?: boolean;
  json?: boolean;
}

/** What block/unblock did and what is now blocked, in words (the structure with --json). */
export function blockSummary(name: 'block' | 'unblock', out: Record<string, any>, now = Date.now()): string {
  const what = name === 'block' ? `blocked ${out['blocked']}` : `unblocked ${out['unblocked']}`;
  const nodes = Array.isArray(out['nodes']) && out['nodes'].length ? ` on ${out['nodes'].join(', ')}` : '';
  const active = Array.isArray(out['active']) ? (out['active'] as Record<string, any>[]) : [];
  const lines = [`${what}${nodes}`, active.length ? 'now blocked (xks unblock lifts one):' : 'now blocked: nothing'];
  for (const b of active) lines.push(`  ${blockLine(b, now)}`);
  return lines.join('\n') + '\n';
}

function command(program: Command, name: 'block' | 'unblock', description: string): void {
  operatorOptions(
    program
      .command(name)
      .description(description)
      .requiredOption('--config <FILE>', 'configuration file of the running appliance')
      .option('--key <ID>', 'one key (externalKeyId); with --store when the id is in several key stores')
      .option('--store <NAME>', 'a whole key store (or, with --key, the key\'s store)')
      .option('--all', 'every key store of every instance on these HSMs')
      .option('--json', 'print the structure: target, nodes written, blocks in force'),
  ).action(async (o: BlockOptions) => {
    if ([o.all === true, o.key !== undefined, o.store !== undefined && o.key === undefined].filter(Boolean).length !== 1) {
      throw new CliError(`${name}: name exactly one target: --key ID, --store NAME or --all`);
    }
    const out = await controlCall(resolve(o.config), `/${name}`, { key: o.key, store: o.store, all: o.all === true, operator: o.operator, reason: o.reason });
    if (typeof out['warning'] === 'string') process.stderr.write(`xks: warning: ${out['warning']}\n`);
    process.stdout.write(o.json ? JSON.stringify(out, null, 2) + '\n' : blockSummary(name, out));
  });
}

export function register(program: Command): void {
  command(
    program,
    'block',
    'Kill switch: refuse Encrypt and Decrypt (400 InvalidStateException) for one key, a key store or everything, on every\n' +
      'instance serving the same HSMs (this one at once, the others within 2 s); GetKeyMetadata reports a blocked key\n' +
      'DISABLED and a blocked store InvalidStateException; health checks keep answering. The block is kept on the HSM\n' +
      'tokens, so it survives restarts. Give --reason: it goes into the audit trail with the operator.',
  );
  command(program, 'unblock', 'Lift a block set with xks block (same target options); refused as incomplete while an HSM node that holds it cannot be written');
}
