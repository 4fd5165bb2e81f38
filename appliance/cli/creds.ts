// `xks creds list|add|retire`: a key store's SigV4 credentials. add and retire rewrite the store's
// credentials file (0600, atomically) and tell the running appliance; every instance sharing the
// file picks it up by itself within a second or two.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { ageDays, credentialTimes, findStore, newCredential, readStoreCredentials, updateCommand, writeStoreCredentials } from '../credentials.js';
import { controlCall } from '../control/client.js';
import { CliError } from './errors.js';
import { operatorOptions, type OperatorOptions } from './operator.js';

interface StoreOptions extends OperatorOptions {
  config: string;
  store: string;
  json?: boolean;
}

/** Tell the running appliance (if any) to re-read the credential files now. */
async function tellRunning(configFile: string, body: object): Promise<string> {
  try {
    await controlCall(configFile, '/credentials', body);
    return 'the running appliance uses the change now';
  } catch (err) {
    return `the running appliance was not told (${(err as Error).message}); it picks the file up within a few seconds, or run xks reload`;
  }
}

function storeCommand(program: Command, name: string, description: string): Command {
  return operatorOptions(
    program
      .command(name)
      .description(description)
      .requiredOption('--config <FILE>', 'the appliance configuration')
      .requiredOption('--store <NAME>', 'the key store'),
  );
}

export function register(program: Command): void {
  const creds = program.command('creds').description('SigV4 credentials of a key store: list, add (rotation step 1), retire (last step)');
  storeCommand(creds, 'list', 'List the credential sets of a key store (access key ids and ages; never the secrets)')
    .option('--json', 'machine-readable output')
    .action(async (o: StoreOptions) => {
      const { config } = await loadConfig(resolve(o.config));
      const store = findStore(config, o.store);
      const maxAge = store.credentialMaxAgeDays;
      // The same times xks status and the age warning use: createdAt, else the file's last change.
      const rows = credentialTimes(config)
        .filter((c) => c.store === store.name)
        .map((c) => {
          const age = ageDays(c.createdAtMs);
          return {
            accessKeyId: c.accessKeyId,
            createdAt: new Date(c.createdAtMs).toISOString(),
            createdAtFrom: c.createdAtInFile ? 'createdAt' : 'file last changed',
            ageDays: age,
            warning: age > maxAge ? `older than ${maxAge} days: rotate it` : undefined,
          };
        });
      if (o.json) return void process.stdout.write(JSON.stringify({ store: store.name, credentialMaxAgeDays: maxAge, credentials: rows }, null, 2) + '\n');
      for (const r of rows) {
        const from = r.createdAtFrom === 'createdAt' ? '' : ' (no createdAt: the file\'s last change)';
        process.stdout.write(`${r.accessKeyId}  ${r.createdAt}${from}  ${r.ageDays} days old${r.warning ? `  WARN ${r.warning}` : ''}\n`);
      }
    });
  storeCommand(creds, 'add', 'Generate a new credential set (spec format) beside the existing ones; print it once and the AWS CLI call that gives it to KMS')
    .option('--json', 'print only {"accessKeyId","secretAccessKey"}')
    .option('--custom-key-store-id <ID>', 'the key store id in KMS (cks-…), to fill in the printed AWS CLI command', 'cks-REPLACE-ME')
    .action(async (o: StoreOptions & { customKeyStoreId: string }) => {
      const file = resolve(o.config);
      const { config } = await loadConfig(file);
      const store = findStore(config, o.store);
      const cred = newCredential();
      writeStoreCredentials(store, [...readStoreCredentials(store), cred]);
      const note = await tellRunning(file, { action: 'creds-add', store: store.name, accessKeyId: cred.accessKeyId, operator: o.operator, reason: o.reason });
      if (o.json) return void process.stdout.write(JSON.stringify({ accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey }) + '\n');
      process.stdout.write(
        `New credential for key store ${store.name} (${note}). The secret is shown only now:\n` +
          `  access key id:     ${cred.accessKeyId}\n  secret access key: ${cred.secretAccessKey}\n\n` +
          `Give it to KMS:\n${updateCommand(o.customKeyStoreId, cred)}\n\n` +
          `Once KMS uses it (its calls show accessKeyId ${cred.accessKeyId} in the audit log), retire the old one:\n` +
          `  xks creds retire --config ${o.config} --store ${store.name} --access-key-id OLD_ID\n`,
      );
    });
  storeCommand(creds, 'retire', 'Remove a credential set; refused for the last one (KMS would be locked out)')
    .requiredOption('--access-key-id <ID>', 'the access key id to retire')
    .action(async (o: StoreOptions & { accessKeyId: string }) => {
      const file = resolve(o.config);
      const { config } = await loadConfig(file);
      const store = findStore(config, o.store);
      const all = readStoreCredentials(store);
      if (!all.some((c) => c.accessKeyId === o.accessKeyId)) throw new CliError(`creds retire: key store ${store.name} has no access key id ${o.accessKeyId} (see xks creds list)`);
      const left = all.filter((c) => c.accessKeyId !== o.accessKeyId);
      if (left.length === 0) throw new CliError(`creds retire: ${o.accessKeyId} is the last credential of key store ${store.name}; add one first (xks creds add) and move KMS to it`);
      writeStoreCredentials(store, left);
      const note = await tellRunning(file, { action: 'creds-retire', store: store.name, accessKeyId: o.accessKeyId, operator: o.operator, reason: o.reason });
      process.stdout.write(`retired ${o.accessKeyId} from key store ${store.name}; ${left.length} left (${note})\n`);
    });
}
