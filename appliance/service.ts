// Assemble the running appliance from one loaded configuration: certificate check, key stores,
// HSM cluster, API listener, load-balancer health, metrics. Start-up failures are one clear line
// (ServiceError); nothing is left running after a failed start.
import { certificateState, checkConfiguredCertificate, enforceCertificatePolicy, type CertificateState } from './certs/configured.js';
import { ConfigError, CredentialError, loadConfig, type LoadedConfig } from './config/load.js';
import { credentialTimes } from './credentials.js';
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
import { buildRuntime, restartOnlyFields, type Runtime } from './runtime.js';
import type { AdminAction } from '../xks/audit/entry.js';
import { openAuditLog, type AuditLog } from '../xks/audit/log.js';
import { createSyslogForwarder, type SyslogForwarder } from '../xks/audit/syslog.js';
import { canServe } from '../xks/api/health.js';
import { HsmStartError } from '../xks/hsm/errors.js';
import { createHsmCluster } from '../xks/hsm/parent/cluster.js';
import { watchHsmKeys } from '../xks/hsm-key-metrics.js';
import type { HsmCluster } from '../xks/hsm/types.js';
import { BlockRegistry, NO_BLOCKS, type BlockScope } from '../xks/blocks.js';
import { setBlock } from './kill-switch.js';
import { KeyDirectory } from '../xks/keys.js';
import { Metrics } from '../xks/metrics.js';
import type { RequestRecord } from '../xks/context.js';
import { RefusalLog } from './refusal-log.js';
import { listenProblem } from './listen-error.js';
import { lockAuditFile } from './audit-lock.js';

/** Who asked for an administrative action, and why (the audit trail's operator and reason). */
export interface Operator {
  operator: string;
  reason?: string | undefined;
}

export interface ReloadResult {
  daysToExpire: number;
  stores: number;
  keys: number;
  hsmNodesAdded: readonly string[];
  hsmNodesRemoved: readonly string[];
  loggingLevel: string;
}

export interface Appliance {
  /** The configuration in force now (a reload replaces it). */
  readonly config: Config;
  readonly hsm: HsmCluster;
  readonly metrics: Metrics;
  readonly api: { address: string; port: number };
  health(): InstanceHealth;
  setDraining(draining: boolean, by?: Operator): void;
  /**
   * Re-read the whole configuration file, certificates and credential files, check all of it, then
   * swap it in at once; reopen the audit file. A bad file (or one changing a restart-only setting)
   * is refused with a ConfigError and the running configuration stays. Live connections stay up.
   */
  reload(by?: Operator): Promise<ReloadResult>;
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

/** Every instance reads the blocks this often: another instance's block holds here within ~2 s. */
const BLOCK_POLL_MS = 500;
const BLOCK_CALL_MS = 1000;
/** How often the credentials files are checked for a change made outside this process. */
const CREDENTIAL_WATCH_MS = 1000;

/** Credential sets past their store's credentialMaxAgeDays: said at start and on every change. */
function warnOldCredentials(config: Config, times: ReadonlyArray<{ store: string; accessKeyId: string; createdAtMs: number }>, logger: Logger): void {
  for (const s of config.keyStores) {
    for (const c of times.filter((t) => t.store === s.name)) {
      const days = (Date.now() - c.createdAtMs) / 86_400_000;
      if (days > s.credentialMaxAgeDays) logger.warn({ store: s.name, accessKeyId: c.accessKeyId, ageDays: Math.floor(days) }, `credential older than ${s.credentialMaxAgeDays} days (keyStores[].credentialMaxAgeDays): rotate it with xks creds add, then retire`);
    }
  }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

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

export async function startAppliance(loaded: LoadedConfig, logger: Logger, opts: { extraRoots?: string[] } = {}): Promise<Appliance> {
  const { config } = loaded;
  const controlSocket = controlSocketPath(loaded.file, config.control?.socket);
  await claimControlSocket(controlSocket);
  const metrics = new Metrics();
  registerBuildInfo(metrics.registry, config);
  let certificate = checkCertificate(config, logger, opts.extraRoots);
  metrics.certificateDaysToExpire.set(certificate.daysToExpire);
  const startedAt = Date.now();
  const statusSections = new Map<string, () => unknown>();
  const hsmLog = logger.child({ component: 'hsm' });
  const hsm = createHsmCluster(config.hsm, hsmLog);
  const keys = new KeyDirectory(hsm);
  // Swapped by reload(); each request takes the one in force when it arrives.
  let runtime: Runtime = buildRuntime(config, { hsm, keys, blocks: NO_BLOCKS });
  // A graceful stop is under way (SIGTERM): draining, and it will not end.
  let stopping = false;
  statusSections.set('stopping', () => stopping);
  let credentials = credentialTimes(config);
  metrics.watchCredentials(() => credentials);
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
    // The kill switch's blocks are read before the first request is served (they survive restarts).
    let blockReadErrors = 0;
    const blocks = new BlockRegistry(hsm, {
      pollMs: BLOCK_POLL_MS,
      callTimeoutMs: Math.max(BLOCK_CALL_MS, config.hsm.callTimeoutMs),
      onChange(list) {
        for (const scope of ['key', 'store', 'all'] as BlockScope[]) metrics.blocksActive.set({ scope }, list.filter((b) => b.scope === scope).length);
        logger.warn({ blocks: list.map((b) => ({ scope: b.scope, store: b.store, keyId: b.keyId, operator: b.operator, reason: b.reason })) }, `kill switch: ${list.length} block(s) in force`);
      },
      onReadError(node, error) {
        // Every 500 ms per node: say it once a minute at most.
        if (blockReadErrors++ % 120 === 0) logger.warn({ node, error }, 'kill switch: blocks cannot be read from this node; its last-known blocks hold');
      },
    });
    await blocks.start();
    closers.push(async () => blocks.stop());
    statusSections.set('blocks', () => blocks.list());
    runtime = { ...runtime, deps: { ...runtime.deps, blocks } };
    metrics.watchHsm(hsm);
    watchHsmKeys(metrics.registry, hsm);
    const syslog = config.audit?.syslog ? startSyslog(config.audit.syslog, metrics, logger) : undefined;
    if (syslog) closers.push(() => syslog.close());
    const releaseAudit = config.audit ? lockAuditFile(config.audit.file) : () => undefined;
    closers.push(async () => releaseAudit());
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
    const loggers = [logger, hsmLog, requestLog];
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
    const pipeline = createPipeline({
      runtime: () => runtime,
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
    // Everything is read and checked first, and new HSM node processes started; only then is
    // anything swapped. One reload at a time (SIGHUP and the CLI may race).
    const swap = async (): Promise<ReloadResult> => {
      await turn();
      const next = (await loadConfig(loaded.file)).config;
      const fixed = restartOnlyFields(runtime.config, next);
      if (fixed.length) {
        throw new ConfigError(`${fixed.join(', ')} changed: that takes a restart (systemctl restart xks); nothing was reloaded and the running configuration stays`);
      }
      // Each step is synchronous work: let requests through between them.
      await turn();
      const nextCert = checkCertificate(next, logger, opts.extraRoots);
      const daysToExpire = nextCert.daysToExpire;
      await turn();
      const nextRuntime = buildRuntime(next, { hsm, keys, blocks: runtime.deps.blocks }, runtime);
      const nextCredentials = credentialTimes(next);
      const change = await hsm.reconfigure(next.hsm).catch((err: Error) => {
        throw new ConfigError(`hsm: ${err.message}; nothing was reloaded`);
      });
      try {
        listener.reconfigure(next);
      } catch (err) {
        await change.abort();
        throw new ConfigError(`server.tls: the new certificate and key cannot be loaded (${(err as Error).message}); the running ones stay`);
      }
      change.commit();
      runtime = nextRuntime;
      // Keys the new file names are checked on every node too (in the background: it reports, it does not refuse).
      hsm.setKeyLabels(configuredLabels(next)).catch((err: Error) => logger.error({ err: err.message }, 'HSM key check failed'));
      certificate = nextCert;
      credentials = nextCredentials;
      seenStamp = credentialStamp();
      for (const l of loggers) l.level = next.logging.level;
      metrics.certificateDaysToExpire.set(daysToExpire);
      const result = {
        daysToExpire,
        stores: nextRuntime.stores.length,
        keys: nextRuntime.stores.reduce((n, st) => n + st.keys.size, 0),
        hsmNodesAdded: change.added,
        hsmNodesRemoved: change.removed,
        loggingLevel: next.logging.level,
      };
      logger.info(result, 'reloaded the configuration, certificate, key and credentials');
      return result;
    };
    // Credentials files shared by several instances (one host, or a shared mount) change under
    // them: each instance re-reads its files when they change, so `xks creds` reaches them all.
    const credentialStamp = () => runtime.config.keyStores.map((s) => {
      try {
        const st = statSync(s.credentialsFile);
        return `${st.ino}:${st.mtimeMs}:${st.size}`;
      } catch {
        return 'missing';
      }
    }).join('|');
    let seenStamp = credentialStamp();
    const swapCredentials = async (): Promise<number> => {
      seenStamp = credentialStamp();
      const next = buildRuntime(runtime.config, { hsm, keys, blocks: runtime.deps.blocks }, runtime);
      credentials = credentialTimes(runtime.config);
      runtime = next;
      warnOldCredentials(runtime.config, credentials, logger);
      return next.stores.reduce((n, st) => n + st.secrets.size, 0);
    };
    const refreshCredentials = (body: Record<string, unknown>, by: Operator): Promise<object> => {
      const action = body['action'] === 'creds-retire' ? 'creds-retire' : 'creds-add';
      const details = { keyStore: String(body['store'] ?? ''), accessKeyId: String(body['accessKeyId'] ?? '') };
      const run = reloading.then(async () => {
        try {
          const count = await swapCredentials();
          recordAdmin({ action, ...by, details });
          logger.info({ ...details, action }, 'credentials reloaded');
          return { credentials: count };
        } catch (err) {
          recordAdmin({ action, ...by, outcome: 'failure', details: { ...details, error: (err as Error).message } });
          throw err;
        }
      });
      reloading = run.catch(() => undefined);
      return run;
    };
    const credentialWatch = setInterval(() => {
      if (credentialStamp() === seenStamp) return;
      reloading = reloading.then(() =>
        swapCredentials().then(
          () => logger.info('a credentials file changed: its credential sets are in use now'),
          (err: Error) => logger.error({ err: err.message }, 'a credentials file changed but cannot be used; the running credentials stay'),
        ),
      );
    }, CREDENTIAL_WATCH_MS);
    credentialWatch.unref();
    closers.push(async () => clearInterval(credentialWatch));
    warnOldCredentials(config, credentials, logger);
    let reloading: Promise<unknown> = Promise.resolve();
    const reload = (by: Operator = { operator: 'unknown' }): Promise<ReloadResult> => {
      const run = reloading.then(async () => {
        // logrotate's create + postrotate: the audit file is reopened even when the rest is refused.
        audit?.reopen();
        try {
          const result = await swap();
          recordAdmin({ action: 'reload', ...by, details: { daysToExpire: result.daysToExpire, stores: result.stores, keys: result.keys } });
          return result;
        } catch (err) {
          recordAdmin({ action: 'reload', ...by, outcome: 'failure', details: { error: (err as Error).message } });
          throw err;
        }
      });
      reloading = run.catch(() => undefined);
      return run;
    };
    // Expiry is a total outage: say so every day from the warning window on.
    const expiryWatch = setInterval(() => {
      try {
        certificate = checkCertificate(runtime.config, logger, opts.extraRoots);
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
    // health.allow defaults to server.allow, which a reload may change: follow the running one.
    let sideAllowList = { for: config, list: new CidrList(config.health.allow ?? config.server.allow) };
    const sideAllowed = (address: string) => {
      const c = runtime.config;
      if (sideAllowList.for !== c) sideAllowList = { for: c, list: new CidrList(c.health.allow ?? c.server.allow) };
      return sideAllowList.list.has(address);
    };
    const sideAllow = (port: string): SideAllow => ({
      has: sideAllowed,
      onReject: (source) => onReject(`${port}-allowlist`, source),
    });
    if (httpPort) await sideListen('health.httpPort', httpPort, () => startHealthHttp(config.server.host, httpPort, config.health.path, health, sideAllow('health-http')));
    if (agentPort) await sideListen('health.agentPort', agentPort, () => startAgentCheck(config.server.host, agentPort, health, sideAllow('agent')));
    const control = await startControlServer(controlSocket, {
      status: () =>
        buildStatus({
          config: runtime.config,
          configFile: loaded.file,
          startedAt,
          api,
          draining,
          health: health(),
          agent: agentReply(health()).trim(),
          nodes: hsm.status(),
          certificate,
          keyStores: keyStoreStatus(runtime.config, new Map(runtime.stores.map((st) => [st.name, st.secrets.size])), credentials),
          sections: statusSections,
          audit: audit ? { file: config.audit?.file, head: audit.head() } : undefined,
        }),
      setDraining,
      reload,
      credentials: (body, by) => refreshCredentials(body, by),
      block: (body, by, blocked) => setBlock(blocks, runtime.config, body, by, recordAdmin, blocked),
      audit: recordAdmin,
      injectFault: (node, fault) => {
        // Fault injection breaks a node on purpose: a test and demo tool, never on a production service.
        if (runtime.config.mode === 'production') throw new ControlError('fault injection is refused in production mode (mode: production); use a demo or test configuration');
        logger.warn({ node, fault }, 'fault injected');
        return hsm.injectFault(node, fault);
      },
    }, (command, err) => logger.error({ command, err: err.message }, 'control command failed'));
    closers.push(() => control.close());
    const drain = async () => {
      stopping = true;
      setDraining(true);
      const { noticeMs, timeoutMs } = runtime.config.server.drain;
      logger.info({ noticeMs, timeoutMs }, 'stopping gracefully: each connection ends after its next answer');
      const { left, ms } = await listener.drain({ noticeMs, timeoutMs });
      if (left > 0) logger.warn({ left, ms }, 'drain timeout passed: closing the connections left');
      else logger.info({ ms }, 'drained: no connection left');
    };
    logger.info({ address: api.address, port: api.port, stores: runtime.stores.map((s) => s.uriPath), agent: agentReply(health()).trim() }, 'xks proxy ready');
    return {
      get config() {
        return runtime.config;
      },
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
