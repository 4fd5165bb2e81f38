// SigV4 credentials of a key store (spec S6-S8), as `xks init`, the demo and `xks creds add` make them:
// kept in the store's credentials file (mode 0600, written atomically), several live at once so KMS
// can be moved to the next one without a failed request.
import { randomBytes, randomInt } from 'node:crypto';
import { statSync } from 'node:fs';
import { stringify } from 'yaml';
import { writeFileAtomic } from './certs/atomic-write.js';
import { loadCredentials } from './config/load.js';
import type { Config, KeyStoreConfig } from './config/schema.js';
import { ConfigError } from './config/load.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export interface StoredCredential {
  accessKeyId: string;
  secretAccessKey: string;
  /** ISO time it was made: its age is shown, and warned about past credentialMaxAgeDays. */
  createdAt?: string | undefined;
}

/** Spec S6/S7: an access key id of 20 characters from A-Z2-7, a secret of 32 random bytes in base64 (44 characters). */
export function newCredential(): StoredCredential {
  let id = 'XKS';
  while (id.length < 20) id += BASE32[randomInt(32)];
  return { accessKeyId: id, secretAccessKey: randomBytes(32).toString('base64'), createdAt: new Date().toISOString() };
}

export function findStore(config: Config, name: string): KeyStoreConfig {
  const store = config.keyStores.find((s) => s.name === name);
  if (!store) throw new ConfigError(`no key store "${name}" in the configuration (stores: ${config.keyStores.map((s) => s.name).join(', ')})`);
  return store;
}

export function readStoreCredentials(store: KeyStoreConfig): StoredCredential[] {
  return loadCredentials(store.credentialsFile, `keyStores[${store.name}].credentialsFile`);
}

export function writeStoreCredentials(store: KeyStoreConfig, credentials: readonly StoredCredential[]): void {
  writeFileAtomic(store.credentialsFile, stringify({ credentials: credentials.map((c) => ({ ...c })) }), 0o600);
}

export interface CredentialTime {
  store: string;
  accessKeyId: string;
  createdAtMs: number;
  /** False when the file gives no createdAt and createdAtMs is the file's last change. */
  createdAtInFile: boolean;
}

/** Each credential set's creation time: createdAt when the file says, else the file's last change. */
export function credentialTimes(config: Config): CredentialTime[] {
  return config.keyStores.flatMap((s, i) => {
    const changed = statSync(s.credentialsFile).mtimeMs;
    return loadCredentials(s.credentialsFile, `keyStores[${i}].credentialsFile`).map((c) => ({
      store: s.name,
      accessKeyId: c.accessKeyId,
      createdAtMs: c.createdAt ? Date.parse(c.createdAt) : changed,
      createdAtInFile: Boolean(c.createdAt),
    }));
  });
}

/** Days since a credential was made, to one decimal. */
export function ageDays(createdAtMs: number, now = Date.now()): number {
  return Math.floor(((now - createdAtMs) / 86_400_000) * 10) / 10;
}

/** The exact AWS CLI call that moves KMS to a credential (the secret goes where KMS wants it). */
export function updateCommand(customKeyStoreId: string, c: StoredCredential): string {
  return `aws kms update-custom-key-store --custom-key-store-id ${customKeyStoreId} \\\n  --xks-proxy-authentication-credential AccessKeyId=${c.accessKeyId},RawSecretAccessKey=${c.secretAccessKey}`;
}
