// What `xks status` shows of a running instance, built in the service from live state. Times are
// ISO strings (never epoch milliseconds); the CLI adds "3 s ago". Other parts of the appliance add
// their own sections (the kill switch adds `blocks`) through `sections`.
import { statSync } from 'node:fs';
import type { CertificateState } from './certs/configured.js';
import type { Config } from './config/schema.js';
import { applianceVersion } from './version.js';
import type { NodeStatus } from '../xks/hsm/types.js';

export interface KeyStoreStatus {
  name: string;
  uriPath: string;
  enabled: boolean;
  keys: number;
  credentials: number;
  /** When the credentials file last changed: the age of the newest credential set at most. */
  credentialsChangedAt: string | undefined;
  /** Each credential set and when it was made (createdAt in the file, else the file's last change). */
  credentialAges: Array<{ accessKeyId: string; createdAt: string | undefined }>;
}

export const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

function changedAt(file: string): string | undefined {
  try {
    return statSync(file).mtime.toISOString();
  } catch {
    return undefined;
  }
}

export function keyStoreStatus(
  config: Config,
  credentialCounts: ReadonlyMap<string, number>,
  times: ReadonlyArray<{ store: string; accessKeyId: string; createdAtMs: number }> = [],
): KeyStoreStatus[] {
  return config.keyStores.map((s) => ({
    name: s.name,
    uriPath: `${s.uriPathPrefix}/kms/xks/v1`,
    enabled: s.enabled,
    keys: s.keys.length,
    credentials: credentialCounts.get(s.name) ?? 0,
    credentialsChangedAt: changedAt(s.credentialsFile),
    credentialAges: times.filter((c) => c.store === s.name).map((c) => ({ accessKeyId: c.accessKeyId, createdAt: iso(c.createdAtMs) })),
  }));
}

export interface StatusInput {
  config: Config;
  configFile: string;
  startedAt: number;
  api: { address: string; port: number };
  draining: boolean;
  health: object;
  agent: string;
  nodes: NodeStatus[];
  certificate: CertificateState;
  keyStores: KeyStoreStatus[];
  sections: ReadonlyMap<string, () => unknown>;
  audit: object | undefined;
}

export function buildStatus(s: StatusInput): Record<string, unknown> {
  return {
    version: applianceVersion(),
    mode: s.config.mode,
    pid: process.pid,
    configFile: s.configFile,
    startedAt: iso(s.startedAt),
    api: s.api,
    draining: s.draining,
    health: s.health,
    agent: s.agent,
    nodes: s.nodes.map((n) => ({ ...n, lastProbeAt: iso(n.lastProbeAt) })),
    certificate: s.certificate,
    keyStores: s.keyStores,
    audit: s.audit,
    ...Object.fromEntries([...s.sections].map(([name, get]) => [name, get()])),
  };
}
