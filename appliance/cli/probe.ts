// `xks probe`: check an XKS endpoint (this appliance or any vendor's) the way KMS will use it.
import { InvalidArgumentError, type Command } from 'commander';
import { progressWriter, renderTable } from '../probe/report.js';
import { runProbe, UnreachableError } from '../probe/run.js';
import { resolveTarget, type ProbeFlags } from '../probe/target.js';
import { CliError } from './errors.js';

const positive = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what}: a positive number`);
  return n;
};

interface ProbeCliOptions extends ProbeFlags {
  json: boolean;
  samples: number;
  budgetMs: number;
  rate?: number;
  duration: number;
}

export function register(program: Command): void {
  program
    .command('probe')
    .summary('prove an XKS endpoint end to end as KMS sees it: TLS, conformance, latency (exit 1 on any FAIL)')
    .description(
      [
        'Check any XKS proxy endpoint as KMS would use it: the TLS chain, names,',
        'versions and mTLS; every rule of the XKS spec observable from outside',
        '(routing, SigV4 and tampering, validation, CDIV, AAD binding, key usage,',
        "health, errors); latency against KMS's 250 ms budget. Each check is PASS,",
        'FAIL or SKIP with the rule id it checks (docs/conformance.md).',
        'The secret comes from --secret-file, never from the command line.',
        '',
        'Examples:',
        '  xks probe --endpoint https://xks.example.com --uri-path /t1/kms/xks/v1 \\',
        '    --access-key-id AKID... --secret-file secret --key key-1',
        '  xks probe --endpoint https://xks.example.com \\',
        '    --secret-file kms-proxy-config.json --key key-1',
        '  xks probe --demo DIR/demo.json [--via-haproxy]',
      ].join('\n'),
    )
    .option('--demo <FILE>', "a running demo's demo.json: endpoint, URI path, credentials, keys, CA and client certificates")
    .option('--via-haproxy', "with --demo: probe through the demo's HAProxy")
    .option('--endpoint <URL>', 'https://host[:port] of the XKS proxy (KMS uses port 443)')
    .option('--uri-path <PATH>', 'the key store\'s XksProxyUriPath, e.g. /tenant1/kms/xks/v1')
    .option('--region <REGION>', 'AWS region to sign for', undefined)
    .option('--access-key-id <ID>', 'SigV4 access key id')
    .option('--secret-file <FILE>', 'file (mode 0600) with the raw secret access key, or the KMS console configuration JSON')
    .option('--key <ID>', 'external key id allowing ENCRYPT and DECRYPT')
    .option('--encrypt-only-key <ID>', 'external key id allowing ENCRYPT only')
    .option('--decrypt-only-key <ID>', 'external key id allowing DECRYPT only')
    .option('--no-usage-key <ID>', 'external key id allowing neither')
    .option('--disabled-key <ID>', 'external key id of a disabled key')
    .option('--ca <FILE>', 'PEM root(s) to trust for the server certificate besides the system roots (private or demo CA)')
    .option('--client-cert <FILE>', 'mTLS: client certificate PEM (as KMS presents)')
    .option('--client-key <FILE>', 'mTLS: its private key (mode 0600)')
    .option('--wrong-client-cert <FILE>', 'mTLS: a client certificate the endpoint must refuse')
    .option('--wrong-client-key <FILE>', 'mTLS: its private key')
    .option('--samples <N>', 'warm calls per API for the latency figures', positive('--samples'), 20)
    .option('--budget-ms <MS>', "latency budget per call (KMS's timeout is 250 ms)", positive('--budget-ms'), 250)
    .option('--rate <R>', 'also run R encrypt requests per second (fixed rate) for --duration seconds', positive('--rate'))
    .option('--duration <S>', 'seconds of the fixed-rate run', positive('--duration'), 10)
    .option('--json', 'print the report as JSON instead of a table', false)
    .action(async (o: ProbeCliOptions & { usageKey?: string }) => {
      // commander reads --no-usage-key as the negation of --usage-key: map it back.
      const flags: ProbeFlags = { ...o, ...(typeof o.usageKey === 'string' ? { noUsageKey: o.usageKey } : {}) };
      const target = resolveTarget(flags);
      const progress = progressWriter(process.stderr);
      let report;
      try {
        report = await runProbe(target, { budgetMs: o.budgetMs, samples: Math.round(o.samples), rate: o.rate ?? 0, durationS: o.duration }, { phase: progress.phase, check: progress.check });
      } catch (err) {
        progress.end();
        if (err instanceof UnreachableError) throw new CliError(err.message);
        throw err;
      }
      progress.end();
      process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : renderTable(report, process.stdout.columns ?? 160));
      if (report.summary.fail > 0) process.exitCode = 1;
    });
}
