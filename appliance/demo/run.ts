// `xks demo`: the appliance as a new operator first meets it (docs/demo.md). Provision,
// start, then publish demo.json (atomically) once the API answers and every HSM node is ACTIVE;
// keep its pids current; stop cleanly on SIGTERM/SIGINT with exit code 0.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoHaproxy, type DemoHaproxy } from './haproxy.js';
import { writeFileAtomic } from '../certs/atomic-write.js';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../logging.js';
import { writeKmsProxyConfig } from '../kms-config.js';
import { runUntilSignalled } from '../lifecycle.js';
import { startAppliance, type Appliance } from '../service.js';
import { DEMO_KEYS, DEMO_PREFIX, DEMO_REGION, DEMO_STORE, demoLayout, type DemoLayout } from './layout.js';
import { demoConfig, demoCredentials, prepareDirs, provisionPki, provisionTokens, writeConfig, type DemoOptions } from './provision.js';
import type { DemoPkiFiles } from '../certs/devpki.js';
import type { Credential } from '../config/schema.js';
import { CliError } from '../cli/errors.js';

export interface DemoRunOptions extends Omit<DemoOptions, 'module' | 'haproxy'> {
  dir: string;
  haproxyPort: number | undefined;
}

const SOFTHSM_MODULES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];

export function findSoftHsm(): string {
  const found = [process.env['XKS_SOFTHSM_MODULE'], ...SOFTHSM_MODULES].find((m): m is string => !!m && existsSync(m));
  if (!found) throw new CliError('SoftHSM2 is not installed: run "apt-get install -y softhsm2" (bin/setup does it), or set XKS_SOFTHSM_MODULE to libsofthsm2.so');
  return found;
}

function demoJson(layout: DemoLayout, app: Appliance, pki: DemoPkiFiles, creds: Credential[], extra: object): object {
  const port = app.api.port;
  const [first, second] = creds as [Credential, Credential];
  return {
    pid: process.pid,
    endpoint: `https://localhost:${port}`,
    store: DEMO_STORE,
    uriPath: `${DEMO_PREFIX}/kms/xks/v1`,
    region: DEMO_REGION,
    accessKeyId: first.accessKeyId,
    secretAccessKey: first.secretAccessKey,
    secondCredential: { accessKeyId: second.accessKeyId, secretAccessKey: second.secretAccessKey },
    caFile: pki.caFile,
    ...(pki.client && app.config.server.tls.clientAuth
      ? { clientCert: pki.client.certFile, clientKey: pki.client.keyFile, wrongClientCert: pki.client.wrongCertFile, wrongClientKey: pki.client.wrongKeyFile }
      : {}),
    keys: Object.fromEntries(DEMO_KEYS.map((k) => [k.role, k.id])),
    healthzUrl: `https://localhost:${port}${app.config.health.path}`,
    metricsUrl: `http://127.0.0.1:${app.config.metrics.port}/metrics`,
    healthHttpUrl: `http://127.0.0.1:${app.config.health.httpPort}${app.config.health.path}`,
    agentCheckPort: app.config.health.agentPort,
    configFile: layout.configFile,
    auditLog: layout.auditLog,
    kmsProxyConfigFile: layout.kmsProxyConfigFile,
    hsmNodes: app.hsm.status().map((n) => ({ id: n.id, pid: n.pid, health: n.health })),
    ...extra,
  };
}

export async function runDemo(opts: DemoRunOptions): Promise<void> {
  const module = findSoftHsm();
  const layout = demoLayout(opts.dir);
  const logger = createLogger('info');
  prepareDirs(layout);
  // demo.json means "ready": a previous run's must not be mistaken for this one's.
  rmSync(layout.demoJson, { force: true });
  const options: DemoOptions = { ...opts, haproxy: opts.haproxyPort !== undefined, module };
  logger.info({ dir: layout.dir, nodes: opts.nodes }, 'preparing demo: tokens, keys, certificates, credentials');
  await provisionTokens(layout, options);
  const pki = provisionPki(layout, options);
  const creds = demoCredentials(layout);
  writeConfig(layout, demoConfig(layout, options, pki));
  writeKmsProxyConfig(layout.kmsProxyConfigFile, `${DEMO_PREFIX}/kms/xks/v1`, creds[0]!);

  const app = await startAppliance(await loadConfig(layout.configFile), logger, { extraRoots: [readFileSync(pki.caFile, 'utf8')] });
  const extra: Record<string, unknown> = {};
  let haproxy: DemoHaproxy | undefined;
  if (opts.haproxyPort) {
    haproxy = await startDemoHaproxy(app.config, {
      dir: layout.haproxyDir,
      port: opts.haproxyPort,
      monitorPort: opts.port + 4,
      caFile: pki.caFile,
      logFile: join(layout.dir, 'logs', 'haproxy.log'),
    }).catch(async (err: unknown) => {
      await app.close();
      throw err;
    });
    extra['haproxy'] = { endpoint: haproxy.endpoint, monitorUrl: haproxy.monitorUrl, configFile: haproxy.configFile, pid: haproxy.pid };
  }
  const publish = () => writeFileAtomic(layout.demoJson, JSON.stringify(demoJson(layout, app, pki, creds, extra), null, 2) + '\n', 0o600);
  const life = runUntilSignalled(
    app,
    logger,
    async () => haproxy?.stop(),
    () => rmSync(layout.demoJson, { force: true }),
  );
  publish();
  app.hsm.onChange(() => {
    if (!life.stopping) publish();
  });
  logger.info({ demoJson: layout.demoJson, endpoint: `https://localhost:${app.api.port}` }, 'demo ready');
}
