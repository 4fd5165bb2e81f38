// A key store at run time: its configuration, current credential sets and key table. Rebuilt as a
// whole on reload, so a request always sees one consistent version.
import { XKS_PATH_SUFFIX, type Credential, type KeyConfig, type KeyStoreConfig } from './options.js';
import { TokenBucket } from './quota.js';

export interface KeyStore {
  readonly name: string;
  readonly uriPath: string;
  readonly config: KeyStoreConfig;
  /** accessKeyId -> raw secret: every set is accepted at once, for rotation (S8). */
  readonly secrets: ReadonlyMap<string, string>;
  readonly keys: ReadonlyMap<string, KeyConfig>;
  /** Requests beyond the store's quota are refused with 429; undefined: no quota. */
  readonly quota: TokenBucket | undefined;
}

export function buildKeyStore(config: KeyStoreConfig, credentials: readonly Credential[]): KeyStore {
  return {
    name: config.name,
    uriPath: config.uriPathPrefix + XKS_PATH_SUFFIX,
    config,
    secrets: new Map(credentials.map((c) => [c.accessKeyId, c.secretAccessKey])),
    keys: new Map(config.keys.map((k) => [k.id, k])),
    quota: config.quota ? new TokenBucket(config.quota.requestsPerSecond, config.quota.burst) : undefined,
  };
}
