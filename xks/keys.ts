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

/** Usages the key really has: the configuration's, where the token allows them too. */
export function effectiveUsage(key: KeyConfig, info: KeyInfo): KeyUsage[] {
  return key.usage.filter((u) => (u === 'ENCRYPT' ? info.encrypt : info.decrypt));
}

export function isAes256(info: KeyInfo): boolean {
  return info.keyType === 'AES' && info.valueLen === 32;
}

/** keySpec as the spec names it; anything else is reported as what it is (K5). */
export function keySpecOf(info: KeyInfo): string {
  return info.keyType === 'AES' && info.valueLen > 0 ? `AES_${info.valueLen * 8}` : info.keyType;
}

export function requireUsage(key: KeyConfig, info: KeyInfo, needed: readonly KeyUsage[]): void {
  if (!isAes256(info)) throw new XksError('InvalidKeyUsageException', 'The external key is not an AES-256 key');
  const have = effectiveUsage(key, info);
  for (const u of needed) {
    if (!have.includes(u)) throw new XksError('InvalidKeyUsageException', `The external key does not allow ${u}`);
  }
}
