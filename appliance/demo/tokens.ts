// SoftHSM2 tokens for the demo and the tests: one token directory per HSM node, each with the same
// keys (standing in for an HSM cluster's key replication). Provisioning runs in a forked child, so
// the node's SOFTHSM2_CONF applies there only; PINs reach that child over IPC, never argv.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compiledEntry } from '../../xks/hsm/package-root.js';
import { CKU_SO, Pkcs11AdminModule } from '../../xks/hsm/admin/token-admin.js';
import { TokenNotFoundError } from '../../xks/hsm/child/pkcs11.js';
import { findKeyObject } from '../../xks/hsm/child/key-object.js';

export interface TokenKey {
  label: string;
  /** 32 bytes for AES-256 (16 and 24 work too); any length for GENERIC_SECRET. */
  material: Buffer;
  encrypt: boolean;
  decrypt: boolean;
  /** CKA_UNWRAP: a wrapping key for `xks keys import` (default false). */
  unwrap?: boolean;
  /** CKA_COPYABLE (default: the module's, true): false makes C_CopyObject refuse the key. */
  copyable?: boolean;
  /**
   * Default 'AES'; 'GENERIC_SECRET' makes a key the appliance must refuse to use; 'RSA' and 'EC'
   * generate a key pair on the token (material, encrypt and decrypt are ignored).
   */
  keyType?: 'AES' | 'GENERIC_SECRET' | 'RSA' | 'EC';
}

export interface ProvisionOptions {
  module: string;
  /** The module's environment, e.g. { SOFTHSM2_CONF: '/…/softhsm2.conf' }. */
  env: Record<string, string>;
  tokenLabel: string;
  soPin: string;
  userPin: string;
  keys: TokenKey[];
}

/** Writes `<dir>/softhsm2.conf` with its token directory `<dir>/tokens`; returns the conf path. */
export function writeSoftHsmConf(dir: string): string {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`, {
    mode: 0o600,
  });
  return conf;
}

/**
 * Initializes the token (on a free slot) unless one with this label exists, then imports the keys
 * it does not hold yet. Keys are sensitive and non-extractable.
 */
export function provisionToken(opts: ProvisionOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = fork(compiledEntry('appliance/demo/tokens.js'), [], {
      serialization: 'advanced',
      execArgv: [],
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    let settled = false;
    child.once('message', (msg: { ok: true } | { ok: false; message: string }) => {
      settled = true;
      if (msg.ok) resolve();
      else reject(new Error(`token "${opts.tokenLabel}": ${msg.message}`));
    });
    child.once('exit', (code, signal) => {
      if (!settled) reject(new Error(`token "${opts.tokenLabel}": the provisioning process exited (${signal ?? `code ${code}`})`));
    });
    child.send({ opts });
  });
}

/** The child's side: everything through the PKCS#11 module itself, as an HSM vendor's tool would. */
function provisionHere(opts: ProvisionOptions): void {
  for (const k of opts.keys) {
    const aes = (k.keyType ?? 'AES') === 'AES';
    if (aes && ![16, 24, 32].includes(k.material.length)) throw new Error(`key "${k.label}": AES key material must be 16, 24 or 32 bytes`);
  }
  const mod = new Pkcs11AdminModule(opts.module);
  mod.initialize();
  try {
    let slot;
    try {
      slot = mod.findSlot({ tokenLabel: opts.tokenLabel });
    } catch (err) {
      if (!(err instanceof TokenNotFoundError)) throw err;
      const free = mod.freeSlots()[0];
      if (!free) throw new Error('no free slot to initialize a token in');
      mod.initToken(free, opts.soPin, opts.tokenLabel);
      // SoftHSM2 moves a freshly initialized token to a new slot id.
      slot = mod.findSlot({ tokenLabel: opts.tokenLabel });
      const so = mod.openSession(slot, true);
      mod.login(so, opts.soPin, CKU_SO);
      mod.initUserPin(so, opts.userPin);
      mod.logout(so);
      mod.closeSession(so);
    }
    const session = mod.openSession(slot, true);
    mod.login(session, opts.userPin);
    for (const k of opts.keys) {
      const keyType = k.keyType ?? 'AES';
      if (keyType === 'RSA' || keyType === 'EC') {
        if (findKeyObject(mod, session, k.label) === null) mod.generateKeyPair(session, { label: k.label, keyType });
      } else if (!mod.findSecretKey(session, k.label)) mod.importSecretKey(session, { ...k, keyType });
    }
    mod.closeSession(session);
  } finally {
    mod.finalize();
  }
}

// Forked by provisionToken: run once, answer, leave.
if (process.send && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.once('message', (msg: { opts: ProvisionOptions }) => {
    let reply: { ok: true } | { ok: false; message: string };
    try {
      provisionHere(msg.opts);
      reply = { ok: true };
    } catch (err) {
      reply = { ok: false, message: err instanceof Error ? err.message : String(err) };
    }
    process.send!(reply, undefined, undefined, () => process.exit(0));
  });
}
