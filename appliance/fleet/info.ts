// What an instance says about itself on its metrics port, so that `xks fleet status` (and any
// Prometheus) can tell instances apart and see when they disagree: the software version and a
// digest of the configuration every instance must share (key stores, HSM nodes, fleet, proxy
// identity; not ports, files or logging, which may differ per instance).
import { createHash } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { applianceVersion } from '../version.js';

export const BUILD_INFO_METRIC = 'xks_proxy_build_info';

/** 12 hex digits of SHA-256 over the settings the fleet must agree on. */
export function sharedConfigDigest(config: Config): string {
  const shared = { proxy: config.proxy, keyStores: config.keyStores, hsm: config.hsm, fleet: config.fleet ?? null };
  return createHash('sha256').update(JSON.stringify(shared)).digest('hex').slice(0, 12);
}

export function registerBuildInfo(registry: Registry, config: Config): void {
  const info = new Gauge({
    name: BUILD_INFO_METRIC,
    help: 'Always 1: the version this instance runs and the digest of its shared configuration',
    labelNames: ['version', 'config_digest'],
    registers: [registry],
  });
  info.set({ version: applianceVersion(), config_digest: sharedConfigDigest(config) }, 1);
}
