// What `xks demo` keeps under its directory, and the demo's fixed names. A second start on the
// same directory reuses tokens, keys, certificates and credentials; only the configuration file
// is rewritten from the flags of this start.
import { join, resolve } from 'node:path';

export const DEMO_STORE = 'demo';
export const DEMO_PREFIX = '/demo';
export const DEMO_REGION = 'us-east-1';
export const HEALTH_KEY_LABEL = 'xks-health-test';

/** The five demo keys of the contract: name in demo.json -> external key id, label, usage. */
export const DEMO_KEYS = [
  { role: 'encryptDecrypt', id: 'demo-encrypt-decrypt', label: 'xks-demo-encrypt-decrypt', encrypt: true, decrypt: true, enabled: true },
  { role: 'encryptOnly', id: 'demo-encrypt-only', label: 'xks-demo-encrypt-only', encrypt: true, decrypt: false, enabled: true },
  { role: 'decryptOnly', id: 'demo-decrypt-only', label: 'xks-demo-decrypt-only', encrypt: false, decrypt: true, enabled: true },
  { role: 'noUsage', id: 'demo-no-usage', label: 'xks-demo-no-usage', encrypt: false, decrypt: false, enabled: true },
  { role: 'disabled', id: 'demo-disabled', label: 'xks-demo-disabled', encrypt: true, decrypt: true, enabled: false },
] as const;

export function demoLayout(dirArg: string) {
  const dir = resolve(dirArg);
  const secrets = join(dir, 'secrets');
  return {
    dir,
    secrets,
    soPinFile: join(secrets, 'so.pin'),
    userPinFile: join(secrets, 'user.pin'),
    credentialsFile: join(secrets, 'credentials-demo.yaml'),
    /** Demo only: the key material, so that a later start with more nodes can add their tokens. */
    keyMaterialFile: join(secrets, 'demo-key-material.json'),
    tls: join(dir, 'tls'),
    hsmDir: (nodeId: string) => join(dir, 'hsm', nodeId),
    configFile: join(dir, 'xks.yaml'),
    auditLog: join(dir, 'logs', 'audit.log'),
    kmsProxyConfigFile: join(dir, 'kms-proxy-config.json'),
    haproxyDir: join(dir, 'haproxy'),
    demoJson: join(dir, 'demo.json'),
    /**
     * Proxy instance k (1-based): instance 1 is the top-level configuration; each other one has a
     * directory of its own, so its control socket (next to its configuration) is its own too.
     */
    instanceConfigFile: (k: number) => (k === 1 ? join(dir, 'xks.yaml') : join(dir, 'instances', instanceId(k - 1), 'xks.yaml')),
    /** DIR/run/<instance id>.pid: the instance's current process, for scripts (`kill -TERM $(cat …)`). */
    pidFile: (id: string) => join(dir, 'run', `${id}.pid`),
    instanceAuditLog: (k: number) => (k === 1 ? join(dir, 'logs', 'audit.log') : join(dir, 'logs', `audit-${instanceId(k - 1)}.log`)),
  };
}

export const instanceId = (i: number) => `xks-${i + 1}`;

/**
 * Ports of instance k (1-based): API, metrics, HTTP health, agent-check. Instance 1 has PORT..PORT+3
 * and the demo's own HAProxy monitor PORT+4; instance k starts at PORT + 8(k-1).
 */
export function instancePorts(port: number, k: number) {
  const base = port + 8 * (k - 1);
  return { api: base, metrics: base + 1, healthHttp: base + 2, agent: base + 3 };
}

export type DemoLayout = ReturnType<typeof demoLayout>;

export const nodeId = (i: number) => `hsm-${i + 1}`;
export const tokenLabel = (i: number) => `xks-hsm-${i + 1}`;
