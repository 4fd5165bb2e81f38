// `xks keys create|list|show|verify`: the keys of the configuration on the HSM nodes. Each command
// starts the nodes the way the service does (own processes and sessions, PINs from their files or
// variables: never argv), so it is safe beside a running service.
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { externalKeyId, KEY_USAGES, type KeyUsage } from '../config/schema.js';
import { controlCall, NotRunningError } from '../control/client.js';
import { startFailure } from '../service.js';
import { readFileSync } from 'node:fs';
import { createHealthKey, createKey, importKey } from '../keys/create.js';
import { checkConfiguredKeys, formatReport, problems } from '../keys/verify.js';
import { CliError } from './errors.js';
import { operatorOptions, type OperatorOptions } from './operator.js';
import { EXIT } from '../exit-codes.js';

function usageArg(value: string, previous: KeyUsage[] | undefined): KeyUsage[] {
  const u = value.toUpperCase();
  if (!(KEY_USAGES as readonly string[]).includes(u)) throw new InvalidArgumentError(`one of ${KEY_USAGES.join(', ')}`);
  return [...(previous ?? []), u as KeyUsage];
}

function idArg(value: string): string {
  const r = externalKeyId.safeParse(value);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'not a valid externalKeyId');
  return value;
}

type Mechanism = 'aes-key-wrap-pad' | 'aes-key-wrap';
function mechanismArg(value: string): Mechanism {
  if (value !== 'aes-key-wrap-pad' && value !== 'aes-key-wrap') throw new InvalidArgumentError('aes-key-wrap-pad or aes-key-wrap');
  return value;
}

/** Asks the running service to reload after a key was added; says what happened either way. */
async function reload(file: string, o: OperatorOptions, reason: string): Promise<void> {
  try {
    await controlCall(file, '/reload', { operator: o.operator, reason: o.reason ?? reason });
    process.stdout.write('the running service reloaded its configuration\n');
  } catch (err) {
    if (err instanceof NotRunningError) process.stdout.write('no running service: the key is used from its next start\n');
    else process.stdout.write(`the running service did not reload (${err instanceof Error ? err.message : String(err)}): run xks reload, or restart it\n`);
  }
}

async function check(configFile: string) {
  const loaded = await loadConfig(resolve(configFile));
  try {
    return { loaded, check: await checkConfiguredKeys(loaded.config) };
  } catch (err) {
    throw startFailure(err);
  }
}

export function register(program: Command): void {
  const keys = program.command('keys').description('Keys on the HSM nodes: create or import one on every node, list, show, verify they hold one truth');

  operatorOptions(
    keys
      .command('create')
      .description(
        'Make a new AES-256 key for an externalKeyId on the HSM cluster and add it to the configuration, then ask the running\n' +
          'service to reload. hsm.replication "vendor": made once, the HSMs replicate it; "proxy": the same material on every\n' +
          'node (random, in memory only, imported CKA_SENSITIVE and not extractable, zeroised after).',
      )
      .requiredOption('--config <FILE>', 'the appliance configuration (YAML); the key is added to it, comments kept')
      .option('--store <NAME>', 'the key store (keyStores[].name) the key belongs to')
      .option('--id <EXTERNAL_KEY_ID>', 'the externalKeyId KMS will use (1-128 of A-Z a-z 0-9 . _ -)', idArg)
      .option('--health-key', 'make the health-check key (hsm.healthKeyLabel) instead: every node needs it before the service starts')
      .option('--label <LABEL>', 'CKA_LABEL on the HSMs (default: the id)')
      .option('--usage <USAGE>', 'ENCRYPT or DECRYPT; repeat for both (default both)', usageArg),
  ).action(async (o: { config: string; store?: string; id?: string; label?: string; usage?: KeyUsage[]; healthKey?: boolean } & OperatorOptions) => {
    const loaded = await loadConfig(resolve(o.config));
    if (o.healthKey) {
      const made = await createHealthKey(loaded);
      process.stdout.write(`created the health-check key "${made.label}" (AES-256) on ${made.nodes.join(', ')}\n`);
      return;
    }
    if (!o.store || !o.id) throw new CliError('give --store and --id (or --health-key)', EXIT.CONFIG);
    const created = await createKey(loaded, { store: o.store, id: o.id, label: o.label, usage: o.usage ?? ['ENCRYPT', 'DECRYPT'] });
    process.stdout.write(`created AES-256 key "${created.label}" on ${created.nodes.join(', ')}; added ${o.store}/${o.id} to ${loaded.file}\n`);
    await reload(loaded.file, o, `keys create ${o.store}/${o.id}`);
  });

  operatorOptions(
    keys
      .command('import')
      .description(
        'Import AES-256 key material that arrives wrapped (RFC 5649 aes-key-wrap-pad or RFC 3394 aes-key-wrap) under a wrapping key already on every HSM node (CKA_UNWRAP): each node unwraps it inside the HSM (C_UnwrapKey) into a sensitive, non-extractable token key; every node must unwrap it before any keeps it. Then the key is added to the configuration and the running service asked to reload, as with keys create.',
      )
      .requiredOption('--config <FILE>', 'the appliance configuration (YAML); the key is added to it, comments kept')
      .requiredOption('--store <NAME>', 'the key store (keyStores[].name) the key belongs to')
      .requiredOption('--id <EXTERNAL_KEY_ID>', 'the externalKeyId KMS will use (1-128 of A-Z a-z 0-9 . _ -)', idArg)
      .requiredOption('--wrapped <FILE>', 'the wrapped key (raw bytes): ciphertext, so its file mode is not checked')
      .requiredOption('--wrapping-key <LABEL>', 'CKA_LABEL of the wrapping key on the HSMs')
      .option('--mechanism <MECH>', 'aes-key-wrap-pad (CKM_AES_KEY_WRAP_PAD, RFC 5649) or aes-key-wrap (CKM_AES_KEY_WRAP, RFC 3394)', mechanismArg, 'aes-key-wrap-pad')
      .option('--label <LABEL>', 'CKA_LABEL on the HSMs (default: the id)')
      .option('--usage <USAGE>', 'ENCRYPT or DECRYPT; repeat for both (default both)', usageArg),
  ).action(async (o: { config: string; store: string; id: string; wrapped: string; wrappingKey: string; mechanism: Mechanism; label?: string; usage?: KeyUsage[] } & OperatorOptions) => {
    const loaded = await loadConfig(resolve(o.config));
    let wrapped: Buffer;
    try {
      wrapped = readFileSync(o.wrapped);
    } catch (err) {
      throw new CliError(`cannot read --wrapped ${o.wrapped}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.CONFIG);
    }
    const made = await importKey(loaded, { store: o.store, id: o.id, label: o.label, usage: o.usage ?? ['ENCRYPT', 'DECRYPT'], wrapped, wrappingLabel: o.wrappingKey, mechanism: o.mechanism });
    process.stdout.write(`imported AES-256 key "${made.label}" (unwrapped with "${o.wrappingKey}") on ${made.nodes.join(', ')}; added ${o.store}/${o.id} to ${loaded.file}\n`);
    await reload(loaded.file, o, `keys import ${o.store}/${o.id}`);
  });

  keys
    .command('verify')
    .description('Check that every HSM node holds the same key under every configured label (and the health-check key); exit 1 on any\nsplit, missing key or node that could not be checked, naming the nodes and labels')
    .requiredOption('--config <FILE>', 'the appliance configuration (YAML)')
    .action(async (o: { config: string }) => {
      const { check: result } = await check(o.config);
      process.stdout.write(formatReport(result));
      const found = problems(result);
      if (found.length) throw new CliError(`${found.length} problem(s): ${found.join('; ')}`, EXIT.RUNTIME);
      process.stdout.write(`every node holds the same ${result.reports.length} key(s)\n`);
    });

  keys
    .command('list')
    .description('Every configured key, per key store, and what each HSM node holds under its label')
    .requiredOption('--config <FILE>', 'the appliance configuration (YAML)')
    .action(async (o: { config: string }) => {
      const { loaded, check: result } = await check(o.config);
      const byLabel = new Map(result.reports.map((r) => [r.label, r]));
      for (const s of loaded.config.keyStores) {
        for (const k of s.keys) {
          const r = byLabel.get(k.label);
          const nodes = r?.nodes.map((v) => `${v.node}:${v.verdict === 'ok' ? (v.info?.keySpec ?? 'ok') : v.verdict}`).join(' ') ?? 'not checked';
          process.stdout.write(`${s.name}/${k.id}  label "${k.label}"  ${k.enabled ? 'enabled' : 'DISABLED'}  ${r?.state ?? 'unchecked'}  ${nodes}\n`);
        }
      }
    });

  keys
    .command('show')
    .description('One key: its configuration and, per HSM node, what the node holds under its label')
    .requiredOption('--config <FILE>', 'the appliance configuration (YAML)')
    .requiredOption('--id <EXTERNAL_KEY_ID>', 'the externalKeyId')
    .option('--store <NAME>', 'the key store, when several have this id')
    .action(async (o: { config: string; id: string; store?: string }) => {
      const loaded = await loadConfig(resolve(o.config));
      const found = loaded.config.keyStores.flatMap((s) => (o.store && s.name !== o.store ? [] : s.keys.filter((k) => k.id === o.id).map((k) => ({ s, k }))));
      if (!found.length) throw new CliError(`no key "${o.id}" in ${o.store ? `key store "${o.store}"` : 'any key store'} of ${loaded.file}`, EXIT.CONFIG);
      const { check: result } = await check(o.config);
      for (const { s, k } of found) process.stdout.write(`${s.name}/${k.id}: label "${k.label}", usage ${k.usage.join('+')}, ${k.enabled ? 'enabled' : 'DISABLED'}\n`);
      process.stdout.write(formatReport(result, new Set(found.map((f) => f.k.label))));
    });
}
