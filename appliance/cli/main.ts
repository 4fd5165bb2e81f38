// The `xks` command. Each sub-command lives in its own file and exports `register(program)`.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.js';
import { CliError } from './errors.js';
import { register as registerAudit } from './audit.js';
import { register as registerConfigTools } from './config-tools.js';
import { register as registerControl } from './control.js';
import { register as registerDemo } from './demo.js';
import { register as registerHaproxy } from './haproxy.js';
import { register as registerProbe } from './probe.js';
import { register as registerServe } from './serve.js';

export { CliError };

export async function main(argv: string[]): Promise<void> {
  const program = new Command('xks')
    .description('AWS KMS External Key Store (XKS) proxy appliance')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerServe(program);
  registerDemo(program);
  registerControl(program);
  registerConfigTools(program);
  registerHaproxy(program);
  registerAudit(program);
  registerProbe(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    if (err instanceof CliError || err instanceof ConfigError) {
      process.stderr.write(`xks: ${err.message}\n`);
      process.exit(err instanceof CliError ? err.exitCode : 2);
    }
    throw err;
  }
}
