// The small appliance configuration the HAProxy tests render from, with the few knobs they vary.
import { configSchema, type Config } from '../../appliance/config/schema.js';
import type { HaproxyOverrides } from '../../appliance/haproxy-options.js';

export interface ConfigPatch {
  keepAliveTimeoutMs?: number;
  proxyProtocol?: boolean;
  agentPort?: number;
  vpce?: boolean;
  host?: string;
  port?: number;
}

export function haproxyTestConfig(patch: ConfigPatch = {}): Config {
  return configSchema.parse({
    proxy: { hostname: 'xks.example.com' },
    server: {
      host: patch.host ?? '0.0.0.0',
      port: patch.port ?? 8443,
      tls: { certFile: 'cert.pem', keyFile: 'key.pem' },
      keepAliveTimeoutMs: patch.keepAliveTimeoutMs ?? 360_000,
      proxyProtocol: { enabled: patch.proxyProtocol ?? true },
    },
    health: { path: '/healthz', ...(patch.agentPort ? { agentPort: patch.agentPort } : {}) },
    hsm: { nodes: [{ id: 'hsm-1', module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 't', pin: { env: 'PIN' } }] },
    keyStores: [{ name: 'store1', uriPathPrefix: '/store1', credentialsFile: 'creds.yaml', ...(patch.vpce ? { vpcEndpoints: ['vpce-0123456789abcdef0'] } : {}) }],
  });
}

export const twoServers: NonNullable<HaproxyOverrides['servers']> = [
  { name: 'node1', address: '10.0.1.10', port: 8443 },
  { name: 'node2', address: '10.0.1.11', port: 8443 },
];
