import { InvalidArgumentError, type Command } from 'commander';
import { runDemo } from '../demo/run.js';
import { CliError } from './errors.js';

export function portArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a TCP port from 1 to 65535');
  return n;
}

function nodesArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 10) throw new InvalidArgumentError('a number of HSM nodes from 1 to 10');
  return n;
}

function instancesArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 8) throw new InvalidArgumentError('a number of proxy instances from 1 to 8');
  return n;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('demo')
    .summary('run a complete demo appliance on SoftHSM2 (ready when DIR/demo.json appears)')
    .description(
      'Run a complete demo appliance in the foreground: SoftHSM2 tokens (one per HSM node, same keys), a development CA and\n' +
        'server certificate for localhost, SigV4 credentials, five demo keys, the KMS console file, and DIR/demo.json once ready.\n' +
        'Ports: PORT (XKS API over TLS), PORT+1 (metrics), PORT+2 (HTTP health check), PORT+3 (HAProxy agent-check),\n' +
        'PORT+4 (HAProxy monitor); instance N of --instances uses PORT+8(N-1) .. PORT+8(N-1)+3 the same way.\n' +
        'With --instances I, each instance is its own `xks serve` process on its own configuration file, restarted when it\n' +
        'exits (as systemd would); demo.json lists them under instances[].\n' +
        'A second start on the same DIR reuses it. SIGTERM or SIGINT stops it cleanly.',
    )
    .requiredOption('--dir <DIR>', 'directory for everything the demo makes (created when missing)')
    .requiredOption('--port <PORT>', 'XKS API port on 127.0.0.1', portArg)
    .option('--nodes <N>', 'number of HSM nodes (SoftHSM2 tokens, each in its own process)', nodesArg, 2)
    .option('--instances <I>', 'number of proxy instances, each its own process (HAProxy balances over all of them)', instancesArg, 1)
    .option('--mtls', 'require a client certificate (CN cks.kms.us-east-1.amazonaws.com) on the API', false)
    .option('--allow <CIDR>', 'source allowlist entry (repeatable; default loopback only)', collect, [] as string[])
    .option('--accept-proxy', 'expect a PROXY protocol v2 header first, trusted from loopback', false)
    .option('--haproxy-port <HP>', 'also run haproxy in front, TCP passthrough on 127.0.0.1:HP', portArg)
    .action(async (o: { dir: string; port: number; nodes: number; instances: number; mtls: boolean; allow: string[]; acceptProxy: boolean; haproxyPort?: number }) => {
      if (o.port + 8 * (o.instances - 1) + 4 > 65535) throw new CliError(`--port ${o.port} leaves no room for ${o.instances} instances below 65536`);
      await runDemo({ dir: o.dir, port: o.port, nodes: o.nodes, instances: o.instances, mtls: o.mtls, allow: o.allow, acceptProxy: o.acceptProxy, haproxyPort: o.haproxyPort });
    });
}
