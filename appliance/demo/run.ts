// `xks demo`: the appliance as a new operator first meets it (docs/demo.md). Provision, start
// (one instance in this process, or several supervised processes), then publish demo.json
// (atomically) once the API answers and every HSM node is ACTIVE; keep its pids current; stop
// cleanly on SIGTERM/SIGINT with exit code 0.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startDemoHaproxy, type DemoHaproxy } from './haproxy.js';
import { writeFileAtomic } from '../certs/atomic-write.js';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../logging.js';
import { writeKmsProxyConfig } from '../kms-config.js';
import { runUntilSignalled, type Runnable } from '../lifecycle.js';
import type { Logger } from '../logging.js';
import type { NodeSummary } from '../fleet/notify.js';
import { startAppliance, type Appliance } from '../service.js';
import { superviseInstance } from './instances.js';
import { DEMO_KEYS, DEMO_PREFIX, DEMO_REGION, DEMO_STORE, demoLayout, instanceId, type DemoLayout } from './layout.js';
import { demoConfig, demoCredentials, prepareDirs, provisionPki, provisionTokens, writeConfig, type DemoOptions } from './provision.js';
import type { DemoPkiFiles } from '../certs/devpki.js';
import type { Config, Credential } from '../config/schema.js';
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

interface InstanceEntry {
  id: string;
  pid: number | undefined;
  [field: string]: unknown;
}

/** What demo.json says about one proxy instance (docs/demo.md: instances[]). */
function instanceEntry(config: Config, id: string, pid: number | undefined, configFile: string, hsmNodes: NodeSummary[]): InstanceEntry {
  const port = config.server.port;
  return {
    id,
    pid,
    endpoint: `https://localhost:${port}`,
    configFile,
    healthzUrl: `https://localhost:${port}${config.health.path}`,
    healthHttpUrl: `http://127.0.0.1:${config.health.httpPort}${config.health.path}`,
    metricsUrl: `http://127.0.0.1:${config.metrics.port}/metrics`,
    agentCheckPort: config.health.agentPort,
    auditLog: config.audit?.file,
    hsmNodes,
  };
}

/** The top-level fields describe instance 1 (`first`); `pid` is always the demo's own process. */
function demoJson(layout: DemoLayout, first: Config, hsmNodes: NodeSummary[], pki: DemoPkiFiles, creds: Credential[], instances: object[], extra: object): object {
  const port = first.server.port;
  const [cred1, cred2] = creds as [Credential, Credential];
  return {
    pid: process.pid,
    endpoint: `https://localhost:${port}`,
    store: DEMO_STORE,
    uriPath: `${DEMO_PREFIX}/kms/xks/v1`,
    region: DEMO_REGION,
    accessKeyId: cred1.accessKeyId,
    secretAccessKey: cred1.secretAccessKey,
    secondCredential: { accessKeyId: cred2.accessKeyId, secretAccessKey: cred2.secretAccessKey },
    caFile: pki.caFile,
    ...(pki.client && first.server.tls.clientAuth
      ? { clientCert: pki.client.certFile, clientKey: pki.client.keyFile, wrongClientCert: pki.client.wrongCertFile, wrongClientKey: pki.client.wrongKeyFile }
      : {}),
    keys: Object.fromEntries(DEMO_KEYS.map((k) => [k.role, k.id])),
    healthzUrl: `https://localhost:${port}${first.health.path}`,
    metricsUrl: `http://127.0.0.1:${first.metrics.port}/metrics`,
    healthHttpUrl: `http://127.0.0.1:${first.health.httpPort}${first.health.path}`,
    agentCheckPort: first.health.agentPort,
    configFile: layout.configFile,
    auditLog: layout.auditLog,
    kmsProxyConfigFile: layout.kmsProxyConfigFile,
    hsmNodes,
    ...extra,
    instances,
  };
}

const nodeSummary = (app: Appliance): NodeSummary[] => app.hsm.status().map((n) => ({ id: n.id, pid: n.pid, health: n.health }));

/**
 * The instances serving, and demo.json's view of them. One instance runs inside the demo process
 * (pid = the demo); several run as supervised `xks serve` processes.
 */
interface RunningInstances extends Runnable {
  readonly first: Config;
  hsmNodes(): NodeSummary[];
  entries(): InstanceEntry[];
  onChange(listener: () => void): void;
}

async function startInProcess(layout: DemoLayout, logger: Logger, extraRoots: string[]): Promise<RunningInstances> {
  const app = await startAppliance(await loadConfig(layout.configFile), logger, { extraRoots });
  return {
    first: app.config,
    hsmNodes: () => nodeSummary(app),
    entries: () => [instanceEntry(app.config, instanceId(0), process.pid, layout.configFile, nodeSummary(app))],
    onChange: (listener) => app.hsm.onChange(listener),
    reload: (by) => app.reload(by),
    close: () => app.close(),
  };
}

async function startSupervised(layout: DemoLayout, count: number, logger: Logger): Promise<RunningInstances> {
  const configs = await Promise.all(Array.from({ length: count }, (_, i) => loadConfig(layout.instanceConfigFile(i + 1))));
  const listeners: Array<() => void> = [];
  const changed = () => listeners.forEach((l) => l());
  const instances = configs.map((c, i) => superviseInstance(instanceId(i), c.file, logger, changed));
  const close = async () => {
    await Promise.all(instances.map((i) => i.stop()));
  };
  try {
    await Promise.all(instances.map((i) => i.firstReady));
  } catch (err) {
    await close();
    throw err;
  }
  return {
    first: configs[0]!.config,
    hsmNodes: () => instances[0]!.hsmNodes,
    entries: () => instances.map((inst, i) => instanceEntry(configs[i]!.config, inst.id, inst.pid, inst.configFile, inst.hsmNodes)),
    onChange: (listener) => listeners.push(listener),
    // SIGHUP to the demo reloads every instance, as `systemctl reload` on each VM would.
    reload: () => instances.forEach((i) => i.pid && process.kill(i.pid, 'SIGHUP')),
    close,
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
  logger.info({ dir: layout.dir, nodes: opts.nodes, instances: opts.instances }, 'preparing demo: tokens, keys, certificates, credentials');
  await provisionTokens(layout, options);
  const pki = provisionPki(layout, options);
  const creds = demoCredentials(layout);
  for (let k = 1; k <= opts.instances; k++) writeConfig(layout, demoConfig(layout, options, pki, k), k);
  writeKmsProxyConfig(layout.kmsProxyConfigFile, `${DEMO_PREFIX}/kms/xks/v1`, creds[0]!);

  const fleet = opts.instances === 1 ? await startInProcess(layout, logger, [readFileSync(pki.caFile, 'utf8')]) : await startSupervised(layout, opts.instances, logger);
  const extra: Record<string, unknown> = {};
  let haproxy: DemoHaproxy | undefined;
  if (opts.haproxyPort) {
    haproxy = await startDemoHaproxy(fleet.first, {
      dir: layout.haproxyDir,
      port: opts.haproxyPort,
      monitorPort: opts.port + 4,
      caFile: pki.caFile,
      logFile: join(layout.dir, 'logs', 'haproxy.log'),
    }).catch(async (err: unknown) => {
      await fleet.close();
      throw err;
    });
    extra['haproxy'] = { endpoint: haproxy.endpoint, monitorUrl: haproxy.monitorUrl, configFile: haproxy.configFile, pid: haproxy.pid };
  }
  mkdirSync(dirname(layout.pidFile('x')), { recursive: true, mode: 0o700 });
  const publish = () => {
    const entries = fleet.entries();
    for (const e of entries) if (e.pid) writeFileAtomic(layout.pidFile(e.id), `${e.pid}\n`, 0o600);
    writeFileAtomic(layout.demoJson, JSON.stringify(demoJson(layout, fleet.first, fleet.hsmNodes(), pki, creds, entries, extra), null, 2) + '\n', 0o600);
  };
  const life = runUntilSignalled(
    fleet,
    logger,
    async () => haproxy?.stop(),
    () => {
      rmSync(layout.demoJson, { force: true });
      rmSync(dirname(layout.pidFile('x')), { recursive: true, force: true });
    },
  );
  publish();
  fleet.onChange(() => {
    if (!life.stopping) publish();
  });
  logger.info({ demoJson: layout.demoJson, endpoint: `https://localhost:${fleet.first.server.port}`, instances: opts.instances }, 'demo ready');
}
