// Commands that read the configuration without a running appliance: `xks check` validates it the
// way `xks serve` would before starting; `xks kms-config` writes the KMS console file.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig, loadCredentials } from '../config/load.js';
import { XKS_PATH_SUFFIX } from '../config/schema.js';
import { writeKmsProxyConfig } from '../kms-config.js';
import { createCliLogger } from '../logging.js';
import { checkCertificate, startFailure } from '../service.js';
import { loginAllNodes } from '../doctor/hsm-login.js';
import { checkConfiguredKeys, formatReport, problems, unusable } from '../keys/verify.js';
import { EXIT } from '../exit-codes.js';
import { HsmStartError } from '../../xks/hsm/errors.js';
import { CliError } from './errors.js';
import { operatorOptions, type OperatorOptions } from './operator.js';
import { recordAdminAction } from './record-admin.js';

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'Validate a configuration file, its secret files and the server certificate, and log in to every HSM node (its PIN, token and\n' +
        'health-check key), as xks serve does before it listens. Exit 2: configuration, 3: credential or PIN, 1: other failure.',
    )
    .requiredOption('--config <FILE>', 'the appliance configuration (YAML)')
    .option('--no-hsm', 'do not contact the HSM nodes (then a wrong PIN is NOT detected)')
    .option('--offline', 'the same as --no-hsm: no login, no key check')
    .action(async (o: { config: string; hsm: boolean; offline?: boolean }) => {
      const { config, file } = await loadConfig(resolve(o.config));
      const cert = checkCertificate(config, createCliLogger());
      let hsm = 'HSM nodes not contacted (--offline): a wrong PIN is not detected, nor a split key';
      if (o.hsm && !o.offline) {
        const logins = await loginAllNodes(config);
        const failed = logins.find((l) => !l.ok);
        if (failed) throw startFailure(new HsmStartError(failed.error ?? `HSM node ${failed.id}: cannot log in`, failed.kind ?? 'runtime'));
        // Per node, what each configured label resolves to: a label that names nothing usable fails here.
        const keys = await checkConfiguredKeys(config);
        process.stdout.write(formatReport(keys));
        const bad = [...problems(keys), ...unusable(config, keys)];
        if (bad.length) throw new CliError(`keys: ${bad.join('; ')}`, EXIT.CONFIG);
        hsm = `logged in to ${logins.length} HSM node(s), health-check key works, ${keys.reports.length} key(s) the same on every node`;
      }
      process.stdout.write(`${file}: valid; ${config.keyStores.length} key store(s); certificate expires in ${cert.daysToExpire} days${cert.staging ? ' (STAGING root: KMS will not accept it)' : ''}; ${hsm}\n`);
    });
  operatorOptions(
    program
      .command('kms-config')
      .description('Write the JSON the AWS KMS console takes under "Upload configuration file" for one key store (mode 0600); the export is recorded in the audit trail')
      .requiredOption('--config <FILE>', 'the appliance configuration (YAML)')
      .requiredOption('--store <NAME>', 'key store name (keyStores[].name)')
      .requiredOption('--out <FILE>', 'where to write it')
      .option('--access-key-id <ID>', 'which credential set (default: the first)'),
  ).action(async (o: { config: string; store: string; out: string; accessKeyId?: string } & OperatorOptions) => {
    const loaded = await loadConfig(resolve(o.config));
    const { config } = loaded;
    const i = config.keyStores.findIndex((s) => s.name === o.store);
    if (i < 0) throw new CliError(`no key store named "${o.store}" (configured: ${config.keyStores.map((s) => s.name).join(', ')})`);
    const store = config.keyStores[i]!;
    const creds = loadCredentials(store.credentialsFile, `keyStores[${i}].credentialsFile`);
    const cred = o.accessKeyId ? creds.find((c) => c.accessKeyId === o.accessKeyId) : creds[0];
    if (!cred) throw new CliError(`key store "${o.store}" has no credential set with access key id ${o.accessKeyId}`);
    writeKmsProxyConfig(resolve(o.out), store.uriPathPrefix + XKS_PATH_SUFFIX, cred);
    // The file holds a secret: who took it, and where to, is on the record.
    await recordAdminAction(loaded, { action: 'kms-config-export', operator: o.operator, reason: o.reason, details: { store: store.name, accessKeyId: cred.accessKeyId, out: resolve(o.out) } });
    process.stdout.write(`${resolve(o.out)}: written (mode 0600) for ${store.uriPathPrefix + XKS_PATH_SUFFIX}, access key id ${cred.accessKeyId}\n`);
  });
}
