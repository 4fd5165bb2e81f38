// Operator commands that act on a running appliance through its control socket.
import { InvalidArgumentError, type Command } from 'commander';
import { resolve } from 'node:path';
import { controlCall } from '../control/client.js';
import { operatorOptions, type OperatorOptions } from './operator.js';

/** What a reload changed, in one line (the structure with --json). */
export function reloadLine(r: { stores?: number; keys?: number; daysToExpire?: number; hsmNodesAdded?: string[]; hsmNodesRemoved?: string[]; loggingLevel?: string }): string {
  const nodes = [
    r.hsmNodesAdded?.length ? `HSM nodes added: ${r.hsmNodesAdded.join(', ')}` : '',
    r.hsmNodesRemoved?.length ? `HSM nodes removed: ${r.hsmNodesRemoved.join(', ')}` : '',
  ].filter(Boolean);
  return (
    `reloaded: ${r.stores} key store(s), ${r.keys} key(s); certificate expires in ${r.daysToExpire} days; ` +
    `${nodes.length ? nodes.join('; ') : 'HSM nodes unchanged'}; logging level ${r.loggingLevel}\n`
  );
}

/** What drain/undrain did, in one line (the full status with --json). */
export function drainLine(s: { draining?: boolean; agent?: string }): string {
  return s.draining
    ? `draining: agent-check answers "${s.agent}", the health check 503; in-flight requests finish (xks undrain ends it)\n`
    : `serving: agent-check answers "${s.agent}"\n`;
}

const printDrain = (out: unknown, json?: boolean): void => {
  process.stdout.write(json ? JSON.stringify(out, null, 2) + '\n' : drainLine(out as { draining?: boolean; agent?: string }));
};

function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive whole number');
  return n;
}

export function register(program: Command): void {
  operatorOptions(
    program
      .command('drain')
      .description('Maintenance: tell load balancers to stop sending new connections (agent-check "drain", health check 503); in-flight requests finish')
      .requiredOption('--config <FILE>', 'configuration file of the running appliance')
      .option('--json', 'print the whole status afterwards'),
  ).action(async (o: { config: string; json?: boolean } & OperatorOptions) => printDrain(await controlCall(resolve(o.config), '/drain', o), o.json));
  operatorOptions(
    program
      .command('undrain')
      .description('End maintenance: load balancers send traffic again')
      .requiredOption('--config <FILE>', 'configuration file of the running appliance')
      .option('--json', 'print the whole status afterwards'),
  ).action(async (o: { config: string; json?: boolean } & OperatorOptions) => printDrain(await controlCall(resolve(o.config), '/undrain', o), o.json));
  operatorOptions(
    program
      .command('reload')
      .description(
        'Reload the whole configuration file (key stores, keys, policies, quotas, allowlists, regions, HSM nodes, logging level),\n' +
          'the certificate chain and key, and the credential files, without a restart and without dropping a connection;\n' +
          'reopen the audit file (after logrotate). Everything is checked first: a bad file is refused with its reason and the\n' +
          'running configuration keeps serving. The listener address, health/metrics ports and the audit file take a restart.\n' +
          'SIGHUP does the same.',
      )
      .requiredOption('--config <FILE>', 'configuration file of the running appliance')
      .option('--json', 'print the result as JSON (stores, keys, daysToExpire, hsmNodesAdded/Removed, loggingLevel)'),
  ).action(async (o: { config: string; json?: boolean } & OperatorOptions) => {
    const out = await controlCall(resolve(o.config), '/reload', o);
    process.stdout.write(o.json ? JSON.stringify(out, null, 2) + '\n' : reloadLine(out as Parameters<typeof reloadLine>[0]));
  });
  program
    .command('fault')
    .description('Fault injection for tests and demos (refused in production mode): make one HSM node slow, failing or frozen, or clear it (kind none)')
    .requiredOption('--config <FILE>', 'configuration file of the running appliance')
    .requiredOption('--node <ID>', 'HSM node id, e.g. hsm-1')
    .requiredOption('--kind <KIND>', 'none | slow | fail | freeze')
    .option('--ms <MS>', 'with slow: delay added to every call', intArg)
    .option('--ckr <CKR_NAME>', 'with fail: the PKCS#11 error every call returns', 'CKR_DEVICE_ERROR')
    .action(async (o: { config: string; node: string; kind: string; ms?: number; ckr: string }) => {
      const s = (await controlCall(resolve(o.config), '/fault', { node: o.node, kind: o.kind, ms: o.ms, ckr: o.ckr })) as { nodes?: { id: string; health: string }[] };
      const what = o.kind === 'none' ? 'cleared' : o.kind === 'slow' ? `slow (+${o.ms} ms per call)` : o.kind === 'fail' ? `fail (${o.ckr})` : o.kind;
      const health = s.nodes?.find((n) => n.id === o.node)?.health;
      process.stdout.write(`${o.node}: fault ${what}${health ? `; node now ${health}` : ''}\n`);
    });
}
