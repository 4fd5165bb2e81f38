// The running configuration as one immutable snapshot: key stores (with credentials and keys),
// routes, what the XKS layer is served with, limits. startAppliance builds the first; a reload
// builds the next from a validated file and swaps it in with one assignment, so every request
// sees one version from start to end.
import type { Config } from './config/schema.js';
import { loadCredentials } from './config/load.js';
import type { PipelineRuntime } from '../gateway/pipeline.js';
import { Router } from '../gateway/router.js';
import { restartOnlyChanges } from '../gateway/listener.js';
import type { BlockView } from '../xks/blocks.js';
import type { HsmCluster } from '../xks/hsm/types.js';
import type { KeyDirectory } from '../xks/keys.js';
import { buildKeyStore, type KeyStore } from '../xks/keystore.js';

export interface Runtime extends PipelineRuntime {
  readonly config: Config;
  readonly stores: readonly KeyStore[];
}

/**
 * Key stores from the configuration and their credential files. A store whose quota is unchanged
 * keeps its token bucket, so a reload is no way around a rate limit.
 */
export function buildKeyStores(config: Config, previous: readonly KeyStore[] = []): KeyStore[] {
  return config.keyStores.map((s, i) => {
    const store = buildKeyStore(s, loadCredentials(s.credentialsFile, `keyStores[${i}].credentialsFile`));
    const old = previous.find((p) => p.name === s.name);
    const sameQuota = old && JSON.stringify(old.config.quota) === JSON.stringify(s.quota);
    return sameQuota ? { ...store, quota: old.quota } : store;
  });
}

export function buildRuntime(config: Config, shared: { hsm: HsmCluster; keys: KeyDirectory; blocks: BlockView }, previous?: Runtime): Runtime {
  const stores = buildKeyStores(config, previous?.stores);
  return {
    config,
    stores,
    router: new Router(
      stores.map((store) => ({ uriPath: store.uriPath, store })),
      config.health.path,
    ),
    deps: { hsm: shared.hsm, keys: shared.keys, blocks: shared.blocks, proxy: config.proxy, hsmConfig: config.hsm },
    maxBodyBytes: config.server.maxBodyBytes,
    requestBudgetMs: config.hsm.requestBudgetMs,
    regions: config.proxy.regions,
    hostname: config.proxy.hostname,
  };
}

/**
 * Settings bound to something opened once at start (sockets, the audit file): a reload that
 * changes one is refused as a whole, with the fields named, because it needs a restart.
 */
export function restartOnlyFields(running: Config, next: Config): string[] {
  const changed = restartOnlyChanges(running, next);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(running.health, next.health)) changed.push('health');
  if (!same(running.metrics, next.metrics)) changed.push('metrics');
  if (!same(running.audit, next.audit)) changed.push('audit');
  if (!same(running.control, next.control)) changed.push('control');
  return changed;
}
