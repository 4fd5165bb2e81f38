// The `xks` command. Each sub-command lives in its own file and exports `register(program)`.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.js';
import { CliError } from './errors.js';
import { applianceVersion } from '../version.js';
import { register as registerCert } from './cert.js';
import { register as registerAudit } from './audit.js';
import { register as registerConfigTools } from './config-tools.js';
import { register as registerControl } from './control.js';
import { register as registerBlock } from './block.js';
import { register as registerCreds } from './creds.js';
import { register as registerDemo } from './demo.js';
import { register as registerFleet } from './fleet.js';
import { register as registerAwsTemplate } from './aws-template.js';
import { register as registerDoctor } from './doctor.js';
import { register as registerHaproxy } from './haproxy.js';
import { register as registerInit } from './init.js';
import { register as registerKeys } from './keys.js';
import { register as registerProbe } from './probe.js';
import { register as registerServe } from './serve.js';
import { register as registerStatus } from './status.js';

export { CliError };

export async function main(argv: string[]): Promise<void> {
  const program = new Command('xks')
    .description('AWS KMS External Key Store (XKS) proxy appliance')
    .version(`xks-appliance ${applianceVersion()}`, '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerServe(program);
  registerDemo(program);
  registerFleet(program);
  registerAwsTemplate(program);
  registerStatus(program);
  registerControl(program);
  registerBlock(program);
  registerCreds(program);
  registerConfigTools(program);
  registerCert(program);
  registerInit(program);
  registerDoctor(program);
  registerHaproxy(program);
  registerAudit(program);
  registerProbe(program);
  registerKeys(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    if (err instanceof CliError || err instanceof ConfigError) {
      process.stderr.write(`xks: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
}
