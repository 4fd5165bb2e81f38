// `xks doctor --config FILE`: every check of appliance/doctor, one line each with the fix;
// exit 1 when any check FAILs (WARN does not).
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { controlCall } from '../control/client.js';
import { formatResults, runChecks, type CheckResult } from '../doctor/check.js';
import { DOCTOR_CHECKS } from '../doctor/checks.js';
import { EXIT } from '../exit-codes.js';
import { CliError } from './errors.js';

export function register(program: Command): void {
  program
    .command('doctor')
    .description(
      'Check a configured appliance end to end, one line per check with OK/WARN/FAIL and the fix: configuration, file modes,\n' +
        'certificate, DNS, TLS 1.2/1.3 handshakes on the listener, every HSM node (login, round trip), idle timeouts,\n' +
        'fleet size vs HAProxy, clock. Exit 1 when anything FAILs.',
    )
    .requiredOption('--config <FILE>', 'the appliance configuration')
    .option('--haproxy-cfg <FILE>', 'the HAProxy configuration in front (a copy of it), to compare timeouts and fleet size')
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; haproxyCfg?: string; json?: boolean }) => {
      const loaded = await loadConfig(resolve(o.config), { certificateMayBeMissing: true });
      const haproxyCfg = o.haproxyCfg ? resolve(o.haproxyCfg) : undefined;
      if (haproxyCfg) {
        try {
          accessSync(haproxyCfg, constants.R_OK);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new CliError(`--haproxy-cfg ${haproxyCfg}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code}; give the haproxy.cfg in front of this appliance (or a copy of it)`);
        }
      }
      let status: Promise<Record<string, any> | undefined> | undefined;
      const results: CheckResult[] = await runChecks(DOCTOR_CHECKS, {
        loaded,
        ...(haproxyCfg ? { haproxyCfg } : {}),
        status: () => (status ??= controlCall(loaded.file, '/status').catch(() => undefined)),
        now: new Date(),
      });
      process.stdout.write(o.json ? JSON.stringify(results, null, 2) + '\n' : formatResults(results));
      if (results.some((r) => r.verdict === 'FAIL')) process.exitCode = EXIT.RUNTIME;
    });
}
