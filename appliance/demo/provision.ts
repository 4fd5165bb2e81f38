// Make (or reuse) everything the demo appliance runs on: PINs, credentials, key material, one
// SoftHSM2 token per node holding the same keys, the development PKI, and the configuration file.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { writeFileAtomic } from '../certs/atomic-write.js';
import { ensureDemoPki, type DemoPkiFiles } from '../certs/devpki.js';
import type { Credential } from '../config/schema.js';
import { newCredential } from '../credentials.js';
import { provisionToken, writeSoftHsmConf } from './tokens.js';
import { DEMO_KEYS, DEMO_PREFIX, DEMO_REGION, DEMO_STORE, HEALTH_KEY_LABEL, instanceId, instancePorts, nodeId, tokenLabel, type DemoLayout } from './layout.js';

export interface DemoOptions {
  port: number;
  nodes: number;
  /** Proxy instances (--instances), each its own process with its own configuration file. */
  instances: number;
  mtls: boolean;
  allow: string[];
  acceptProxy: boolean;
  /** HAProxy runs in front (--haproxy-port). */
  haproxy: boolean;
  module: string;
}

export { newCredential };

function readOrCreate(file: string, make: () => string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const value = make();
  writeFileAtomic(file, value, 0o600);
  return value;
}

interface KeyMaterial {
  [label: string]: string; // base64 (and the "_notice")
}

/** Written into the key material file: whoever finds it learns what it is and is not for. */
export const DEMO_NOTICE =
  'DEMO ONLY, NOT FIT FOR PRODUCTION: this directory keeps raw AES key material in clear (this file), ' +
  'a development CA and test credentials, so that tests and later demo starts can use them. Never protect real data with it.';

/** Credentials: two sets from the start, so rotation can be shown (S8). */
export function demoCredentials(layout: DemoLayout): Credential[] {
  const text = readOrCreate(layout.credentialsFile, () => stringify({ credentials: [newCredential(), newCredential()] }));
  return (parse(text) as { credentials: Credential[] }).credentials;
}

export async function provisionTokens(layout: DemoLayout, opts: DemoOptions): Promise<void> {
  const soPin = readOrCreate(layout.soPinFile, () => randomBytes(12).toString('hex'));
  const userPin = readOrCreate(layout.userPinFile, () => randomBytes(12).toString('hex'));
  const material = JSON.parse(
    readOrCreate(layout.keyMaterialFile, () => {
      const m: KeyMaterial = { _notice: DEMO_NOTICE };
      for (const label of [...DEMO_KEYS.map((k) => k.label), HEALTH_KEY_LABEL]) m[label] = randomBytes(32).toString('base64');
      return JSON.stringify(m);
    }),
  ) as KeyMaterial;
  const keys = [
    ...DEMO_KEYS.map((k) => ({ label: k.label, material: Buffer.from(material[k.label]!, 'base64'), encrypt: k.encrypt, decrypt: k.decrypt })),
    { label: HEALTH_KEY_LABEL, material: Buffer.from(material[HEALTH_KEY_LABEL]!, 'base64'), encrypt: true, decrypt: true },
  ];
  for (let i = 0; i < opts.nodes; i++) {
    const dir = layout.hsmDir(nodeId(i));
    const conf = writeSoftHsmConf(dir);
    await provisionToken({ module: opts.module, env: { SOFTHSM2_CONF: conf }, tokenLabel: tokenLabel(i), soPin, userPin, keys });
  }
}

export function provisionPki(layout: DemoLayout, opts: DemoOptions): DemoPkiFiles {
  return ensureDemoPki(layout.tls, { serverNames: ['localhost'], serverIps: ['127.0.0.1'], mtls: opts.mtls, region: DEMO_REGION });
}

/**
 * The appliance configuration instance k (1-based) runs with: the same schema an operator writes.
 * Instances differ only in their ports and audit log; all name the whole fleet.
 */
export function demoConfig(layout: DemoLayout, opts: DemoOptions, pki: DemoPkiFiles, k = 1): object {
  const ports = instancePorts(opts.port, k);
  const fleet = Array.from({ length: opts.instances }, (_, i) => {
    const p = instancePorts(opts.port, i + 1);
    return { id: instanceId(i), host: '127.0.0.1', port: p.api, agentPort: p.agent, healthPort: p.healthHttp, metricsPort: p.metrics };
  });
  return {
    mode: 'demo',
    proxy: { hostname: 'localhost', vendor: 'xks-appliance', regions: [DEMO_REGION] },
    fleet: { instances: fleet },
    server: {
      host: '127.0.0.1',
      port: ports.api,
      tls: {
        certFile: pki.serverChainFile,
        keyFile: pki.serverKeyFile,
        ...(opts.mtls && pki.client ? { clientAuth: { caFile: pki.client.caFile, subjects: [pki.client.subject] } } : {}),
      },
      keepAliveTimeoutMs: 360_000,
      // Its HAProxy asks the agent every second: two intervals to notice a drain.
      drain: { noticeMs: 2000, timeoutMs: 10_000 },
      allow: opts.allow.length ? opts.allow : ['127.0.0.0/8', '::1/128'],
      // --accept-proxy: the API port requires PROXY v2. With HAProxy in front (send-proxy-v2) but
      // no --accept-proxy, direct clients keep working: the header is optional from loopback.
      proxyProtocol: {
        enabled: opts.acceptProxy || opts.haproxy,
        mode: opts.acceptProxy ? 'required' : 'optional',
        trustedProxies: ['127.0.0.0/8', '::1/128'],
        timeoutMs: 3000,
      },
    },
    health: { path: '/healthz', httpPort: ports.healthHttp, agentPort: ports.agent },
    metrics: { host: '127.0.0.1', port: ports.metrics },
    logging: { level: 'info' },
    audit: { file: layout.instanceAuditLog(k) },
    hsm: {
      vendor: 'SoftHSM',
      callTimeoutMs: 100,
      requestBudgetMs: 200,
      probeIntervalMs: 2000,
      healthKeyLabel: HEALTH_KEY_LABEL,
      nodes: Array.from({ length: opts.nodes }, (_, i) => ({
        id: nodeId(i),
        model: 'SoftHSM2 2.6',
        module: opts.module,
        tokenLabel: tokenLabel(i),
        pin: { file: layout.userPinFile },
        ivMode: 'caller',
        sessions: 4,
        callMode: 'sync',
        env: { SOFTHSM2_CONF: join(layout.hsmDir(nodeId(i)), 'softhsm2.conf') },
      })),
    },
    keyStores: [
      {
        name: DEMO_STORE,
        uriPathPrefix: DEMO_PREFIX,
        credentialsFile: layout.credentialsFile,
        regions: [DEMO_REGION],
        keys: DEMO_KEYS.map((k) => ({ id: k.id, label: k.label, usage: ['ENCRYPT', 'DECRYPT'], enabled: k.enabled })),
      },
    ],
  };
}

export function prepareDirs(layout: DemoLayout): void {
  mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  mkdirSync(layout.secrets, { recursive: true, mode: 0o700 });
  mkdirSync(layout.tls, { recursive: true, mode: 0o700 });
}

export function writeConfig(layout: DemoLayout, config: object, k = 1): void {
  const file = layout.instanceConfigFile(k);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, `# Written by "xks demo" on every start; edit a copy for a real appliance.\n# ${DEMO_NOTICE}\n${stringify(config)}`, 0o600);
}
