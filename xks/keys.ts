// Resolve an externalKeyId to its configuration and token attributes, and check key usage.
// Token attributes are cached briefly: they change only when an operator changes the token, and
// asking the HSM on every call would double the HSM round trips on the hot path.
import type { KeyConfig, KeyUsage } from './options.js';
import { XksError } from './errors.js';
import type { HsmCluster, KeyInfo } from './hsm/types.js';
import type { KeyStore } from './keystore.js';

const TTL_MS = 30_000;

export class KeyDirectory {
  private readonly cache = new Map<string, { info: KeyInfo | null; at: number }>();

  constructor(private readonly hsm: HsmCluster) {}

  /** The configured key, or 404 KeyNotFoundException (spec §7 step 7). */
  configured(store: KeyStore, keyId: string): KeyConfig {
    const key = store.keys.get(keyId);
    if (!key) throw new XksError('KeyNotFoundException', 'External key not found');
    return key;
  }

  /** Token attributes; `fresh` skips the cache (GetKeyMetadata reads the real token). */
  async info(key: KeyConfig, deadline: number, fresh: boolean): Promise<KeyInfo> {
    const hit = this.cache.get(key.label);
    let info: KeyInfo | null;
    if (!fresh && hit && performance.now() - hit.at < TTL_MS) {
      info = hit.info;
    } else {
      info = await this.hsm.keyInfo(key.label, deadline);
      this.cache.set(key.label, { info, at: performance.now() });
    }
    if (!info) throw new XksError('KeyNotFoundException', 'External key not found');
    return info;
  }
}

/** ENCRYPT and DECRYPT are AES-GCM here: only an AES secret key can do them, whatever its flags say. */
function isAes(info: KeyInfo): boolean {
  return info.objectClass === 'SECRET_KEY' && info.keyType === 'AES';
}

/** ENCRYPT/DECRYPT the key really can do: the configuration's, where the token allows them too. */
export function effectiveUsage(key: KeyConfig, info: KeyInfo): KeyUsage[] {
  if (!isAes(info)) return [];
  return key.usage.filter((u) => (u === 'ENCRYPT' ? info.encrypt : info.decrypt));
}

/**
 * keyUsage as GetKeyMetadata reports it (K3): for an AES key, the XKS usages above; for any other
 * key (RSA, EC, HMAC), which can do neither, what the object allows instead (SIGN, VERIFY, WRAP,
 * UNWRAP, DERIVE), so it is described truthfully and never as ENCRYPT/DECRYPT.
 */
export function reportedUsage(key: KeyConfig, info: KeyInfo): string[] {
  return isAes(info) ? effectiveUsage(key, info) : info.otherUsage.slice(0, 10);
}

export function isAes256(info: KeyInfo): boolean {
  return isAes(info) && info.valueLen === 32;
}

/** keySpec as the spec names it (AES_256); anything else is reported as what it is (K5). */
export function keySpecOf(info: KeyInfo): string {
  return info.keySpec;
}

export function requireUsage(key: KeyConfig, info: KeyInfo, needed: readonly KeyUsage[]): void {
  if (!isAes256(info)) throw new XksError('InvalidKeyUsageException', `The external key is ${info.keySpec}, not an AES_256 key`);
  const have = effectiveUsage(key, info);
  for (const u of needed) {
    if (!have.includes(u)) throw new XksError('InvalidKeyUsageException', `The external key does not allow ${u}`);
  }
}
