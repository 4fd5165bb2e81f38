// Assemble the running appliance from one loaded configuration: certificate check, key stores,
// HSM cluster, API listener, load-balancer health, metrics. Start-up failures are one clear line
// (ServiceError); nothing is left running after a failed start.
import { certificateState, checkConfiguredCertificate, enforceCertificatePolicy, type CertificateState } from './certs/configured.js';
import { ConfigError, CredentialError, loadCredentials, type LoadedConfig } from './config/load.js';
import { readFileSync, statSync } from 'node:fs';
import type { Config } from './config/schema.js';
import { claimControlSocket, ControlError, startControlServer } from './control/server.js';
import { controlSocketPath } from './control/socket-path.js';
import type { Logger } from './logging.js';
import { registerBuildInfo } from './fleet/info.js';
import { buildStatus, keyStoreStatus } from './status.js';
import { createApiListener, type ApiListener } from '../gateway/listener.js';
import { CidrList } from '../xks/cidr-list.js';
import { agentReply, healthCheckBody, startAgentCheck, startHealthHttp, startMetricsHttp, type InstanceHealth, type SideAllow, type SideServer } from '../gateway/health.js';
import { createPipeline } from '../gateway/pipeline.js';
import { Router } from '../gateway/router.js';
import type { AdminAction } from '../xks/audit/entry.js';
import { openAuditLog, type AuditLog } from '../xks/audit/log.js';
import { createSyslogForwarder, type SyslogForwarder } from '../xks/audit/syslog.js';
import { canServe } from '../xks/api/health.js';
import { HsmStartError } from '../xks/hsm/errors.js';
import { createHsmCluster } from '../xks/hsm/parent/cluster.js';
import type { HsmCluster } from '../xks/hsm/types.js';
import { KeyDirectory } from '../xks/keys.js';
import { buildKeyStore, type KeyStore } from '../xks/keystore.js';
import { Metrics } from '../xks/metrics.js';
import type { RequestRecord } from '../xks/context.js';
import { RefusalLog } from './refusal-log.js';
import { listenProblem } from './listen-error.js';

/** Who asked for an administrative action, and why (the audit trail's operator and reason). */
export interface Operator {
  operator: string;
  reason?: string | undefined;
}

export interface Appliance {
  readonly config: Config;
  readonly hsm: HsmCluster;
  readonly metrics: Metrics;
  readonly api: { address: string; port: number };
  health(): InstanceHealth;
  setDraining(draining: boolean, by?: Operator): void;
  /** Re-read the certificate chain, key and credential files, reopen the audit file; live connections stay up. */
  reload(by?: Operator): { daysToExpire: number; stores: number };
  /** Record an administrative action in the audit trail (no-op without one); throws when it cannot be written. */
  audit(action: AdminAction): void;
  /**
   * Graceful stop, first half (SIGTERM): tell the load balancers, keep answering, end every
   * connection between requests (server.drain); resolves when none is left or at the timeout.
   */
  drain(): Promise<void>;
  /** Adds a section to `xks status` (e.g. the kill switch's blocks), computed on each call. */
  addStatusSection(name: string, get: () => unknown): void;
  close(): Promise<void>;
}

/**
 * Certificate problems: production refuses (to start, or to load a new certificate) on any error;
 * the demo warns. A chain ending at a staging root is logged as not what KMS accepts, every time.
 */
export function checkCertificate(config: Config, logger: Logger, extraRoots: string[] = []): CertificateState {
  const report = checkConfiguredCertificate(config, { extraRoots });
  enforceCertificatePolicy(config, report, (code, message) => logger.warn({ code, daysToExpire: report.daysToExpire }, message));
  return certificateState(config, report);
}

/** An HSM node that cannot start, as the exit code systemd acts on: a PIN problem is never retried. */
export function startFailure(err: unknown): unknown {
  if (!(err instanceof HsmStartError)) return err;
  if (err.kind === 'pin') return new CredentialError(err.message);
  if (err.kind === 'config') return new ConfigError(err.message);
  return err;
}

/** Every key label the key stores name: the cluster checks each on every node. */
export function configuredLabels(config: Config): string[] {
  return config.keyStores.flatMap((s) => s.keys.map((k) => k.label));
}

export function buildKeyStores(config: Config): { stores: KeyStore[]; counts: number[] } {
  const creds = config.keyStores.map((s, i) => loadCredentials(s.credentialsFile, `keyStores[${i}].credentialsFile`));
  return { stores: config.keyStores.map((s, i) => buildKeyStore(s, creds[i]!)), counts: creds.map((c) => c.length) };
}

/** Audit forwarding: the collector's trouble is logged (once per outage) and counted, never fatal. */
function startSyslog(cfg: NonNullable<NonNullable<Config['audit']>['syslog']>, metrics: Metrics, logger: Logger): SyslogForwarder {
  let failing = false;
  return createSyslogForwarder(
    {
      host: cfg.host,
      port: cfg.port,
      tls: cfg.tls ? { ca: cfg.caFile ? readFileSync(cfg.caFile, 'utf8') : undefined } : undefined,
      appName: cfg.appName,
      facility: cfg.facility,
    },
    {
      onDropped: (n) => metrics.auditForwardDropped.inc(n),
      onError(err) {
        if (failing) return;
        failing = true;
        setTimeout(() => (failing = false), 60_000).unref();
        logger.warn({ host: cfg.host, port: cfg.port, err: (err as NodeJS.ErrnoException).code ?? err.message }, 'audit forwarding to syslog failed; retrying (the audit file keeps every record)');
      },
    },
  );
}

/** Each credential set's creation time: createdAt when the file says, else the file's last change. */
function credentialTimes(config: Config): Array<{ store: string; accessKeyId: string; createdAtMs: number }> {
  return config.keyStores.flatMap((s, i) => {
    const changed = statSync(s.credentialsFile).mtimeMs;
    return loadCredentials(s.credentialsFile, `keyStores[${i}].credentialsFile`).map((c) => ({
      store: s.name,
      accessKeyId: c.accessKeyId,
      createdAtMs: c.createdAt ? Date.parse(c.createdAt) : changed,
    }));
  });
}

export async function startAppliance(loaded: LoadedConfig, logger: Logger, opts: { extraRoots?: string[] } = {}): Promise<Appliance> {
  const { config } = loaded;
  const controlSocket = controlSocketPath(loaded.file, config.control?.socket);
  await claimControlSocket(controlSocket);
  const metrics = new Metrics();
  registerBuildInfo(metrics.registry, config);
  let certificate = checkCertificate(config, logger, opts.extraRoots);
  metrics.certificateDaysToExpire.set(certificate.daysToExpire);
  const startedAt = Date.now();
  let credentialCounts = new Map<string, number>();
  const buildStores = () => {
    const built = buildKeyStores(config);
    credentialCounts = new Map(config.keyStores.map((s, i) => [s.name, built.counts[i]!]));
    return built.stores;
  };
  const stores = buildStores();
  const statusSections = new Map<string, () => unknown>();
  // A graceful stop is under way (SIGTERM): draining, and it will not end.
  let stopping = false;
  statusSections.set('stopping', () => stopping);
  let credentials = credentialTimes(config);
  metrics.watchCredentials(() => credentials);
  const hsm = createHsmCluster(config.hsm, logger.child({ component: 'hsm' }));
  hsm.onChange((nodes) => metrics.nodes(nodes));
  const closers: Array<() => Promise<void>> = [() => hsm.close()];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    await hsm.setKeyLabels(configuredLabels(config));
    await hsm.start().catch((err: unknown) => {
      throw startFailure(err);
    });
    metrics.watchHsm(hsm);
    const syslog = config.audit?.syslog ? startSyslog(config.audit.syslog, metrics, logger) : undefined;
    if (syslog) closers.push(() => syslog.close());
    const audit: AuditLog | undefined = config.audit
      ? openAuditLog({
          file: config.audit.file,
          maxBytes: config.audit.maxBytes,
          ...(syslog ? { onWritten: (lines) => syslog.send(lines) } : {}),
          onWriteError(err) {
            metrics.auditWriteErrors.inc();
            logger.error({ err: (err as NodeJS.ErrnoException).code ?? err.message, file: config.audit?.file }, 'audit write failed: the requests of this write were answered 500');
          },
        })
      : undefined;
    if (audit) closers.push(() => audit.close());
    const recordAdmin = (action: AdminAction) => audit?.admin(action);

    let draining = false;
    const setDraining = (d: boolean, by: Operator = { operator: 'unknown' }) => {
      recordAdmin({ action: d ? 'drain' : 'undrain', ...by });
      draining = d;
      logger.info({ draining: d }, d ? 'draining: load balancers are told to stop sending traffic' : 'drain ended');
    };
    const health = (): InstanceHealth => {
      const nodes = hsm.status();
      return { canServe: canServe(nodes), capacity: nodes.filter((n) => n.health === 'ACTIVE').length / Math.max(1, nodes.length), draining };
    };
    const requestLog = logger.child({ component: 'request' });
    const refusals = new RefusalLog(config.logging.refusalIntervalMs, ({ fields, suppressed }, intervalMs) => {
      const detail = `${suppressed} more like this in ${intervalMs / 1000} s, not written one by one`;
      logger.warn({ ...fields, suppressed, detail }, 'refusals summed up');
      if (fields['status'] !== undefined) audit?.request({ ...(fields as RequestRecord), suppressed }, () => undefined);
    });
    closers.push(async () => refusals.close());
    const onReject = (reason: string, source: string | undefined, detail?: string) => {
      metrics.rejected.inc({ reason });
      if (refusals.admit(`${reason}|${source}`, { reason, source })) logger.warn({ reason, source, detail }, 'connection refused');
    };
    const router = new Router(stores.map((store) => ({ uriPath: store.uriPath, store })), config.health.path);
    const pipeline = createPipeline({
      router,
      deps: { hsm, keys: new KeyDirectory(hsm), proxy: config.proxy, hsmConfig: config.hsm },
      maxBodyBytes: config.server.maxBodyBytes,
      requestBudgetMs: config.hsm.requestBudgetMs,
      regions: config.proxy.regions,
      hostname: config.proxy.hostname,
      healthCheck: () => healthCheckBody(health()),
      onFinish(record, release) {
        metrics.request(record);
        // Load balancers ask every second or two: their checks are counted, not logged or audited.
        if (record.operation === 'health-check') return release(true);
        // Not authenticated (401, or refused before SigV4): logged and audited once per source,
        // status and interval; the rest are summed up (RefusalLog).
        if (record.accessKeyId === undefined && record.status !== 200) {
          const fields = { source: record.source, status: record.status, errorName: record.errorName };
          if (!refusals.admit(`request|${record.status}|${record.source}`, fields)) return release(true);
        }
        // The audit record is the per-request record: the operator log gets a line for each error,
        // and for each success only at debug level (one line per request cost a fifth of its CPU).
        if (record.status === 200) requestLog.debug(record, 'request');
        else requestLog.warn(record, 'request');
        if (audit) audit.request(record, release);
        else release(true);
      },
    });
    const listener: ApiListener = createApiListener(config, pipeline, { onReject });
    const api = await listener.listen().catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`server.port: cannot listen on ${config.server.host}:${config.server.port}: ${listenProblem(err, config.server.port)}`);
    });
    closers.push(() => listener.close());
    // Checked first, swapped only when good: a bad new certificate never replaces a working one.
    const reload = (by: Operator = { operator: 'unknown' }) => {
      // logrotate's create + postrotate: the audit file is reopened even when the rest is refused.
      audit?.reopen();
      try {
        const nextCert = checkCertificate(config, logger, opts.extraRoots);
        const daysToExpire = nextCert.daysToExpire;
        const next = buildStores();
        try {
          listener.reloadTls(config);
        } catch (err) {
          throw new ConfigError(`server.tls: the new certificate and key cannot be loaded (${(err as Error).message}); the running ones stay`);
        }
        router.replace(next.map((store) => ({ uriPath: store.uriPath, store })));
        certificate = nextCert;
        credentials = credentialTimes(config);
        metrics.certificateDaysToExpire.set(daysToExpire);
        logger.info({ daysToExpire, stores: next.length }, 'reloaded certificate, key and credentials');
        recordAdmin({ action: 'reload', ...by, details: { daysToExpire, stores: next.length } });
        return { daysToExpire, stores: next.length };
      } catch (err) {
        recordAdmin({ action: 'reload', ...by, outcome: 'failure', details: { error: (err as Error).message } });
        throw err;
      }
    };
    // Expiry is a total outage: say so every day from the warning window on.
    const expiryWatch = setInterval(() => {
      try {
        certificate = checkCertificate(config, logger, opts.extraRoots);
        metrics.certificateDaysToExpire.set(certificate.daysToExpire);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'certificate check failed');
      }
    }, 86_400_000);
    expiryWatch.unref();
    closers.push(async () => clearInterval(expiryWatch));
    const side: SideServer[] = [];
    closers.push(async () => {
      await Promise.all(side.map((s) => s.close()));
    });
    const host = config.metrics.host;
    const sideListen = (field: string, port: number, start: () => Promise<SideServer>) =>
      start().then(
        (server) => void side.push(server),
        (err: NodeJS.ErrnoException) => {
          throw new ConfigError(`${field}: cannot listen on port ${port}: ${listenProblem(err, port)}`);
        },
      );
    const { port: metricsPort } = config.metrics;
    const { httpPort, agentPort } = config.health;
    if (metricsPort) await sideListen('metrics.port', metricsPort, () => startMetricsHttp(host, metricsPort, () => metrics.registry.metrics(), metrics.registry.contentType));
    const sideAllowList = new CidrList(config.health.allow ?? config.server.allow);
    const sideAllow = (port: string): SideAllow => ({
      has: (address) => sideAllowList.has(address),
      onReject: (source) => onReject(`${port}-allowlist`, source),
    });
    if (httpPort) await sideListen('health.httpPort', httpPort, () => startHealthHttp(config.server.host, httpPort, config.health.path, health, sideAllow('health-http')));
    if (agentPort) await sideListen('health.agentPort', agentPort, () => startAgentCheck(config.server.host, agentPort, health, sideAllow('agent')));
    const control = await startControlServer(controlSocket, {
      status: () =>
        buildStatus({
          config,
          configFile: loaded.file,
          startedAt,
          api,
          draining,
          health: health(),
          agent: agentReply(health()).trim(),
          nodes: hsm.status(),
          certificate,
          keyStores: keyStoreStatus(config, credentialCounts, credentials),
          sections: statusSections,
          audit: audit ? { file: config.audit?.file, head: audit.head() } : undefined,
        }),
      setDraining,
      reload,
      audit: recordAdmin,
      injectFault: (node, fault) => {
        // Fault injection breaks a node on purpose: a test and demo tool, never on a production service.
        if (config.mode === 'production') throw new ControlError('fault injection is refused in production mode (mode: production); use a demo or test configuration');
        logger.warn({ node, fault }, 'fault injected');
        return hsm.injectFault(node, fault);
      },
    }, (command, err) => logger.error({ command, err: err.message }, 'control command failed'));
    closers.push(() => control.close());
    const drain = async () => {
      stopping = true;
      setDraining(true);
      const { noticeMs, timeoutMs } = config.server.drain;
      logger.info({ noticeMs, timeoutMs }, 'stopping gracefully: each connection ends after its next answer');
      const { left, ms } = await listener.drain({ noticeMs, timeoutMs });
      if (left > 0) logger.warn({ left, ms }, 'drain timeout passed: closing the connections left');
      else logger.info({ ms }, 'drained: no connection left');
    };
    logger.info({ address: api.address, port: api.port, stores: stores.map((s) => s.uriPath), agent: agentReply(health()).trim() }, 'xks proxy ready');
    return {
      config,
      hsm,
      metrics,
      api,
      health,
      setDraining,
      reload,
      audit: recordAdmin,
      drain,
      addStatusSection: (name, get) => void statusSections.set(name, get),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
