// `xks keys create`: a new AES-256 key for an externalKeyId, on the cluster, then in the
// configuration. With hsm.replication "vendor" the HSMs copy keys themselves (Luna HA group, nShield
// Security World, CloudHSM cluster): the key is made once, on the first node. With "proxy" (
// independent tokens) the same material goes to every node: 32 random bytes in memory, imported as
// a sensitive, non-extractable token object by each node's own process, zeroised after, never on disk.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync, readFileSync } from 'node:fs';
import { parseDocument, YAMLMap, YAMLSeq } from 'yaml';
import type { LoadedConfig } from '../config/load.js';
import type { HsmConfig, HsmNodeConfig, KeyUsage } from '../config/schema.js';
import { writeFileAtomic } from '../certs/atomic-write.js';
import { CliError } from '../cli/errors.js';
import { compiledEntry } from '../../xks/hsm/package-root.js';
import type { ImportReply, ImportRequest } from './import-child.js';

export interface CreateOptions {
  store: string;
  id: string;
  label?: string | undefined;
  usage: KeyUsage[];
}

export interface Created {
  label: string;
  nodes: string[];
}

/** `xks keys import`: the key arrives wrapped under a key already on the HSMs (CKA_UNWRAP). */
export interface ImportOptions extends CreateOptions {
  wrapped: Buffer;
  wrappingLabel: string;
  mechanism: 'aes-key-wrap-pad' | 'aes-key-wrap';
}

export function createKey(loaded: LoadedConfig, o: CreateOptions): Promise<Created> {
  return addKey(loaded, o, (label) => onCluster(loaded.config.hsm, label));
}

/** Like createKey, but the material is unwrapped inside each HSM (C_UnwrapKey), never in this process. */
export function importKey(loaded: LoadedConfig, o: ImportOptions): Promise<Created> {
  // Both mechanisms wrap 32 bytes into 40 (RFC 3394: n+8; RFC 5649: padded to 8, plus 8).
  if (o.wrapped.length !== 40) throw new CliError(`the wrapped key is ${o.wrapped.length} bytes; an AES-256 key wrapped with ${o.mechanism} is 40: check the file (raw bytes, not base64 or hex)`, 2);
  return addKey(loaded, o, (label) => onCluster(loaded.config.hsm, label, { data: o.wrapped, unwrap: { wrappingLabel: o.wrappingLabel, mechanism: o.mechanism } }));
}

async function addKey(loaded: LoadedConfig, o: CreateOptions, make: (label: string) => Promise<Created>): Promise<Created> {
  const { config, file } = loaded;
  const store = config.keyStores.find((s) => s.name === o.store);
  if (!store) throw new CliError(`no key store "${o.store}" in ${file} (stores: ${config.keyStores.map((s) => s.name).join(', ')})`, 2);
  if (store.keys.some((k) => k.id === o.id)) throw new CliError(`key store "${o.store}" has a key "${o.id}" already; choose another --id`, 2);
  const label = o.label ?? o.id;
  const users = config.keyStores.flatMap((s) => s.keys.filter((k) => k.label === label).map((k) => `${s.name}/${k.id}`));
  if (label === config.hsm.healthKeyLabel || users.length) throw new CliError(`the label "${label}" is in use (${users.join(', ') || 'health-check key'}); choose another --label`, 2);
  const made = await make(label);
  addToConfig(file, o.store, { id: o.id, label, usage: o.usage });
  return made;
}

/** The health-check key (hsm.healthKeyLabel): on the HSMs only, the configuration names it already. */
export function createHealthKey(loaded: LoadedConfig): Promise<Created> {
  return onCluster(loaded.config.hsm, loaded.config.hsm.healthKeyLabel);
}

/**
 * The same new AES-256 key under `label` on the cluster (once, with vendor replication): random
 * material, or `wrapped` material each node unwraps itself.
 */
async function onCluster(hsm: HsmConfig, label: string, wrapped?: { data: Buffer; unwrap: NonNullable<ImportRequest['unwrap']> }): Promise<Created> {
  const nodes = hsm.replication === 'vendor' ? hsm.nodes.slice(0, 1) : hsm.nodes;
  // Every node first logs in and has the label free (and can unwrap the key): no node gets material another cannot.
  const unwrap = wrapped && { unwrap: wrapped.unwrap };
  const checks = await Promise.all(nodes.map((n) => onNode(n, { node: n, label, material: wrapped?.data ?? new Uint8Array(0), encrypt: true, decrypt: true, dryRun: true, ...unwrap })));
  const refused = checks.map((r, i) => (r.ok ? undefined : `HSM node ${nodes[i]!.id}: ${r.message}`)).filter(Boolean);
  if (refused.length) throw new CliError(`nothing ${wrapped ? 'imported' : 'created'}: ${refused.join('; ')}`, 1);
  const material = wrapped?.data ?? randomBytes(32);
  let results: ImportReply[];
  try {
    results = await Promise.all(nodes.map((n) => onNode(n, { node: n, label, material, encrypt: true, decrypt: true, ...unwrap })));
  } finally {
    material.fill(0);
  }
  const failed = results.map((r, i) => (r.ok ? undefined : `HSM node ${nodes[i]!.id}: ${r.message}`)).filter(Boolean);
  if (failed.length) {
    const done = nodes.filter((_, i) => results[i]!.ok).map((n) => n.id);
    throw new CliError(`the key "${label}" was created on ${done.join(', ') || 'no node'} only (${failed.join('; ')}); delete it there and run the command again`, 1);
  }
  return { label, nodes: nodes.map((n) => n.id) };
}

/** One node's import process: the node's module environment; the request (and material) over IPC. */
function onNode(node: HsmNodeConfig, req: ImportRequest): Promise<ImportReply> {
  return new Promise((resolve) => {
    const child = fork(compiledEntry('appliance/keys/import-child.js'), [], {
      serialization: 'advanced',
      execArgv: [],
      env: { ...process.env, ...node.env },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    let reply: ImportReply | undefined;
    child.once('message', (m: ImportReply) => (reply = m));
    child.once('exit', (code, signal) => resolve(reply ?? { ok: false, message: `its process exited (${signal ?? `code ${code}`})` }));
    child.send(req);
  });
}

/** Appends the key to the store in the YAML file, keeping its comments, layout and mode. */
function addToConfig(file: string, storeName: string, key: { id: string; label: string; usage: KeyUsage[] }): void {
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const stores = doc.get('keyStores') as YAMLSeq<YAMLMap>;
  const store = stores.items.find((s) => s.get('name') === storeName)!;
  let keys = store.get('keys') as YAMLSeq | undefined;
  if (!keys) {
    keys = new YAMLSeq();
    store.set('keys', keys);
  }
  // `keys: []` as written by xks init: one key per line from now on.
  keys.flow = false;
  const entry: Record<string, unknown> = { id: key.id, label: key.label };
  if (key.usage.length !== 2) entry['usage'] = key.usage;
  keys.items.push(doc.createNode(entry));
  const st = statSync(file);
  writeFileAtomic(file, doc.toString(), st.mode & 0o777, process.getuid?.() === 0 ? { uid: st.uid, gid: st.gid } : undefined);
}
