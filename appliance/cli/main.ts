// The `xks` command. Each sub-command lives in its own file and exports `register(program)`.
import { Command, CommanderError } from 'commander';
import { register as registerHaproxy } from './haproxy.js';

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('xks')
    .description('AWS KMS External Key Store (XKS) proxy appliance')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerHaproxy(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    if (err instanceof CliError) {
      process.stderr.write(`xks: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
}
