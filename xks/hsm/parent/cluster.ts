// HsmCluster over node processes: choose a node, run the call under a deadline, fail over to
// another node on timeouts, crashes and session or device errors while the request budget lasts.
// InvalidCiphertext and InvalidKeyUsage are answers, never retried. Node health comes from live
// traffic and from a background prober doing an encrypt+decrypt on hsm.healthKeyLabel.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { HsmOptions, HsmNodeOptions } from '../options.js';
import { HsmError, HsmStartError } from '../errors.js';
import { LogLimiter } from './log-limiter.js';
import { takePinVariables, type PinVariable } from './pin-env.js';
import { NodeCallError, type CallFailure } from './ipc-client.js';
import { NodeClient } from './node-client.js';
import { NodeHealthTracker } from './node-health.js';
import { checkKey } from './key-check.js';
import type { NodeCall, OpName, OpResults } from '../protocol.js';
import type { DecryptInput, DecryptOutput, EncryptInput, EncryptOutput, Fault, HsmCluster, HsmEvent, HsmReconfiguration, KeyInfo, KeyReport, KeyVerdict, NodeHealth, NodeOutcome, NodeStatus, StartOptions, StateObject } from '../types.js';

/** Calls in flight per node before new requests are refused (429) rather than queued. */
const IN_FLIGHT_PER_SESSION = 8;
const MIN_IN_FLIGHT = 32;
/** Below this much budget a call cannot succeed: answer 503 now. */
const MIN_CALL_MS = 1;
/** The first probe is not on a request path: a slow start is not a failure. */
const START_PROBE_MS = 5000;
/** How often a node out of rotation is probed, at most. */
const RECOVERY_PROBE_MS = 200;
/** A key check is background work: give each of its calls more time than a request gets. */
const KEY_CHECK_CALL_MS = 2000;

/** Preference between nodes in rotation, on top of their weights. */
const HEALTH_FACTOR: Record<NodeHealth, number> = { ACTIVE: 4, DEGRADED: 1, UNAVAILABLE: 1 };

/** Answers about the request itself: returned at once, never retried. */
const FINAL: ReadonlySet<CallFailure> = new Set<CallFailure>(['invalid-ciphertext', 'key-usage']);
/** Failures worth another attempt on a node tried already, when no other node is left (vendor HA). */
const RETRY_SAME: ReadonlySet<CallFailure> = new Set<CallFailure>(['session', 'device', 'internal']);

interface Node {
  client: NodeClient;
  cfg: HsmNodeOptions;
  tracker: NodeHealthTracker;
  maxInFlight: number;
  calls: number;
  restarts: number;
  lastProbeAt: number | undefined;
  probeTimer: NodeJS.Timeout | undefined;
  /**
   * Its current process passed the key check and was put in rotation. A process that just came up
   * is used for nothing (not even as a last resort) before that: health and crypto agree on when a
   * node is back.
   */
  admitted: boolean;
  /** Per configured label: what it holds compared with the majority ('ok' = may serve it). */
  keys: Map<string, KeyVerdict>;
}

export function createHsmCluster(hsm: HsmOptions, logger?: Logger): HsmCluster {
  return new Cluster(hsm, logger);
}

/** A node process is kept across a reload only when everything it was started with is the same. */
function sameNode(a: HsmNodeOptions, b: HsmNodeOptions, before: HsmOptions, after: HsmOptions): boolean {
  return (
    JSON.stringify(a) === JSON.stringify(b) &&
    before.healthKeyLabel === after.healthKeyLabel &&
    before.callTimeoutMs === after.callTimeoutMs &&
    before.hangKillAfterMs === after.hangKillAfterMs
  );
}

/** How long a node taken out by a reload may finish the calls it has before it is closed. */
const RETIRE_GRACE_MS = 2000;

class Cluster implements HsmCluster {
  /** Replaced as a whole on reload; a request's retries read the current list. */
  private nodes: Node[];
  private readonly listeners: Array<(nodes: NodeStatus[]) => void> = [];
  private readonly eventListeners: Array<(event: HsmEvent) => void> = [];
  /** PIN variables by name, taken out of the environment at start (and at reloads). */
  private readonly pins = new Map<string, PinVariable>();
  private readonly limiter = new LogLimiter();
  private rr = 0;
  private started = false;
  private closed = false;
  /** Configured key labels (the health key too) and their last check. */
  private labels: string[] = [];
  private readonly reports = new Map<string, KeyReport>();
  private keyTimer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    private hsm: HsmOptions,
    private readonly logger?: Logger,
  ) {
    // Before any process starts: each node gets its own PIN variable only (pin-env.ts). Kept by
    // name, so a node a reload adds or changes finds its variable too.
    for (const [id, pin] of takePinVariables(hsm.nodes)) this.pins.set(hsm.nodes.find((n) => n.id === id)!.pin.env!, pin);
    this.nodes = hsm.nodes.map((cfg) => this.makeNode(cfg, hsm, true));
  }

  /** retryStart: a node that fails its first start keeps trying (at service start); a reload refuses instead. */
  private makeNode(cfg: HsmNodeOptions, hsm: HsmOptions, retryStart: boolean): Node {
    const pin = cfg.pin.env === undefined ? undefined : this.pins.get(cfg.pin.env);
    const client = new NodeClient(cfg, { healthKeyLabel: hsm.healthKeyLabel, callTimeoutMs: hsm.callTimeoutMs, hangKillAfterMs: hsm.hangKillAfterMs, pin, logger: this.logger, retryStart });
    const node: Node = {
      client,
      cfg,
      tracker: new NodeHealthTracker(),
      maxInFlight: Math.max(MIN_IN_FLIGHT, cfg.sessions * IN_FLIGHT_PER_SESSION),
      calls: 0,
      restarts: 0,
      lastProbeAt: undefined,
      probeTimer: undefined,
      admitted: false,
      keys: new Map(),
    };
    client.on('up', () => this.onUp(node));
    client.on('down', () => this.onDown(node));
    return node;
  }

  /**
   * Reload: node processes for the nodes `next` adds or changes are started and probed first (a
   * node that cannot start refuses the reload with its one-line reason, and nothing changed);
   * commit() then swaps the node list at once. Nodes left out finish their calls and are closed.
   */
  async reconfigure(next: HsmOptions): Promise<HsmReconfiguration> {
    const before = this.hsm;
    for (const [id, pin] of takePinVariables(next.nodes)) this.pins.set(next.nodes.find((n) => n.id === id)!.pin.env!, pin);
    const kept = new Map<string, Node>();
    for (const n of this.nodes) {
      const cfg = next.nodes.find((c) => c.id === n.cfg.id);
      if (cfg && sameNode(n.cfg, cfg, before, next)) kept.set(cfg.id, n);
    }
    const fresh = next.nodes.filter((c) => !kept.has(c.id)).map((cfg) => this.makeNode(cfg, next, false));
    const abort = async () => {
      await Promise.all(fresh.map((n) => n.client.close()));
    };
    const results = await Promise.allSettled(fresh.map(async (n) => (await n.client.start(), await this.firstProbe(n))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await abort();
      throw failed.reason;
    }
    return {
      added: fresh.map((n) => n.cfg.id),
      removed: this.nodes.filter((n) => ![...kept.values()].includes(n)).map((n) => n.cfg.id),
      abort,
      commit: () => {
        if (this.closed) return;
        const old = this.nodes;
        this.hsm = next;
        this.nodes = next.nodes.map((c) => kept.get(c.id) ?? fresh.find((n) => n.cfg.id === c.id)!);
        for (const n of fresh) {
          this.admit(n);
          this.scheduleProbe(n, this.hsm.probeIntervalMs);
        }
        void this.checkKeys().catch(() => undefined);
        for (const n of old) if (!this.nodes.includes(n)) void this.retire(n);
        this.notify();
      },
    };
  }

  /** A node out of the configuration: no new calls reach it; its calls in flight finish first. */
  private async retire(node: Node): Promise<void> {
    clearTimeout(node.probeTimer);
    const end = Date.now() + RETIRE_GRACE_MS;
    while (node.client.inFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await node.client.close();
  }

  /**
   * Starts every node; resolves once at least hsm.minNodesAtStart (default 1) logged in and the keys
   * were checked. The others are retried with back-off in the background, except a node whose PIN
   * was refused. A key split with no majority refuses the start (unless refuseSplit is false).
   */
  async start(opts: StartOptions = {}): Promise<void> {
    const results = await Promise.allSettled(this.nodes.map((n) => n.client.start()));
    const failures: string[] = [];
    let firstFailure: unknown;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const node = this.nodes[i]!;
      const line = r.reason instanceof Error ? r.reason.message : String(r.reason);
      firstFailure ??= r.reason;
      failures.push(line);
      const retried = !node.client.refusal;
      this.logger?.error({ node: node.cfg.id, retried }, retried ? `${line} (retrying in the background)` : `${line} (not retried: fix the PIN, then restart the service)`);
    });
    const up = this.nodes.filter((n) => n.client.ready);
    const min = Math.min(this.hsm.minNodesAtStart ?? 1, this.nodes.length);
    if (up.length < min) {
      await this.close();
      if (up.length === 0 && firstFailure instanceof Error && failures.length === 1) throw firstFailure;
      const kind = firstFailure instanceof HsmStartError ? firstFailure.kind : 'runtime';
      throw new HsmStartError(`${up.length} of ${this.nodes.length} HSM nodes started, hsm.minNodesAtStart is ${min}: ${failures.join('; ')}`, kind);
    }
    try {
      await Promise.all(up.map((n) => this.firstProbe(n)));
      await this.checkKeys();
    } catch (err) {
      await this.close();
      throw err;
    }
    const split = [...this.reports.values()].filter((r) => r.state === 'split');
    if (split.length && opts.refuseSplit !== false) {
      await this.close();
      throw new HsmStartError(split.map((r) => r.message).join('; '), 'config');
    }
    for (const n of up) this.admit(n);
    this.started = true;
    for (const n of up) this.scheduleProbe(n, this.hsm.probeIntervalMs);
    this.scheduleKeyCheck();
    // Nodes that came up while the keys were checked.
    for (const n of this.nodes) if (n.client.ready && !n.admitted) void this.readmit(n);
    this.notify();
  }

  /** The labels whose keys are checked on every node (the health key is always one). */
  async setKeyLabels(labels: readonly string[]): Promise<void> {
    this.labels = [...new Set([this.hsm.healthKeyLabel, ...labels])];
    for (const label of this.reports.keys()) if (!this.labels.includes(label)) this.reports.delete(label);
    if (this.started) await this.checkKeys();
  }

  /** The last check of every configured key, with each node's view. */
  keyReports(): KeyReport[] {
    return this.labels.map((l) => this.reports.get(l)).filter((r): r is KeyReport => r !== undefined);
  }

  /** Runs the key check now (one at a time: a second caller waits for the running one, then runs). */
  checkKeys(): Promise<void> {
    const run = async () => {
      const nodes = this.nodes.filter((n) => n.client.ready);
      for (const label of this.labels) {
        if (this.closed) return;
        const report = await checkKey(label, nodes.map((n) => n.client), Math.max(this.hsm.callTimeoutMs, KEY_CHECK_CALL_MS));
        this.record(report);
      }
    };
    const next = (this.checking ?? Promise.resolve()).then(run, run);
    this.checking = next.finally(() => {
      if (this.checking === next) this.checking = undefined;
    });
    return next;
  }

  /** Keeps each node's verdict (an 'unknown' keeps the last one decided) and logs each change once. */
  private record(report: KeyReport): void {
    const before = this.reports.get(report.label);
    for (const view of report.nodes) {
      const node = this.nodes.find((n) => n.cfg.id === view.node)!;
      if (view.verdict !== 'unknown' || !node.keys.has(report.label)) node.keys.set(report.label, view.verdict);
    }
    // Nodes not asked (no process) keep what they had.
    this.reports.set(report.label, report);
    if (before?.message === report.message && before.state === report.state) return;
    const fields = { key: report.label, state: report.state, nodes: Object.fromEntries(report.nodes.map((v) => [v.node, v.verdict])) };
    if (report.state === 'consistent') {
      if (before && before.state !== 'consistent') this.logger?.info(fields, `HSM key "${report.label}" is consistent on every node again`);
    } else if (report.state === 'split' || report.state === 'absent') this.logger?.error(fields, report.message);
    else if (report.state === 'degraded') this.logger?.warn(fields, report.message);
    if (this.started) this.notify();
  }

  private scheduleKeyCheck(): void {
    clearTimeout(this.keyTimer);
    if (this.closed) return;
    this.keyTimer = setTimeout(() => {
      this.checkKeys()
        .catch((err: unknown) => this.logger?.error({ err: err instanceof Error ? err.message : String(err) }, 'HSM key check failed'))
        .finally(() => this.scheduleKeyCheck());
    }, this.hsm.probeIntervalMs);
    this.keyTimer.unref();
  }

  async keyInfo(label: string, deadline: number): Promise<(KeyInfo & { node: string }) | null> {
    const { value, node } = await this.run({ op: 'keyInfo', label }, deadline);
    return value ? { ...value, node } : null;
  }

  async encrypt(input: EncryptInput, deadline: number): Promise<EncryptOutput> {
    const { value, node } = await this.run({ op: 'encrypt', input }, deadline);
    return { ...value, node };
  }

  async decrypt(input: DecryptInput, deadline: number): Promise<DecryptOutput> {
    const { value, node } = await this.run({ op: 'decrypt', input }, deadline);
    return { plaintext: value.plaintext, node };
  }

  status(): NodeStatus[] {
    return this.nodes.map((n) => {
      const bad = this.badKeys(n);
      return {
        id: n.cfg.id,
        model: n.cfg.model,
        health: this.healthOf(n, bad),
        detail: this.detailOf(n, bad),
        pid: n.client.pid,
        lastProbeAt: n.lastProbeAt,
        calls: n.calls,
        inFlight: n.client.inFlight,
        sessions: n.cfg.sessions,
        restarts: n.restarts,
      };
    });
  }

  /** A node that lacks a configured key or holds other material serves, but is DEGRADED. */
  private healthOf(n: Node, bad: string[]): NodeHealth {
    const h = n.tracker.health;
    return h === 'ACTIVE' && bad.length > 0 ? 'DEGRADED' : h;
  }

  /** Configured keys this node does not serve (asked on every GetHealthStatus: no copies when none). */
  private badKeys(n: Node): string[] {
    const bad: string[] = [];
    for (const [label, v] of n.keys) if (v !== 'ok' && v !== 'unknown' && this.labels.includes(label)) bad.push(`${label}: ${v}`);
    return bad;
  }

  private detailOf(n: Node, bad: string[]): string | undefined {
    if (n.client.refusal) return `${n.client.refusal} (not retried)`;
    return bad.length ? `keys not served here: ${bad.join(', ')}` : undefined;
  }

  onChange(listener: (nodes: NodeStatus[]) => void): void {
    this.listeners.push(listener);
  }

  onEvent(listener: (event: HsmEvent) => void): void {
    this.eventListeners.push(listener);
  }

  private emit(event: HsmEvent): void {
    for (const listener of this.eventListeners) listener(event);
  }

  listState(application: string, timeoutMs: number): Promise<NodeOutcome<StateObject[]>[]> {
    return this.onEveryNode({ op: 'stateList', application }, timeoutMs);
  }

  putState(application: string, label: string, value: Buffer, timeoutMs: number): Promise<NodeOutcome<true>[]> {
    return this.onEveryNode({ op: 'statePut', application, label, value }, timeoutMs);
  }

  deleteState(application: string, label: string, timeoutMs: number): Promise<NodeOutcome<number>[]> {
    return this.onEveryNode({ op: 'stateDelete', application, label }, timeoutMs);
  }

  /** The same call on every node at once; a node that is down or fails is reported, not retried. */
  private onEveryNode<K extends OpName>(call: Extract<NodeCall, { op: K }>, timeoutMs: number): Promise<NodeOutcome<OpResults[K]>[]> {
    return Promise.all(
      this.nodes.map((n) =>
        n.client.call(call, timeoutMs).then(
          (value): NodeOutcome<OpResults[K]> => ({ node: n.cfg.id, ok: true, value }),
          (err: Error): NodeOutcome<OpResults[K]> => ({ node: n.cfg.id, ok: false, error: err instanceof NodeCallError ? (err.ckr ?? err.kind) : err.message }),
        ),
      ),
    );
  }

  async injectFault(nodeId: string, fault: Fault): Promise<void> {
    const node = this.nodes.find((n) => n.cfg.id === nodeId);
    if (!node) throw new Error(`no HSM node "${nodeId}"`);
    try {
      await node.client.call({ op: 'fault', fault }, fault.kind === 'none' ? 1000 : 5000);
    } catch (err) {
      // A frozen process cannot hear "none": only a new process clears it, so make one now.
      if (fault.kind !== 'none' || !(err instanceof NodeCallError) || err.kind !== 'timeout') throw err;
      this.logger?.warn({ node: nodeId }, `HSM node ${nodeId} does not answer (frozen): restarting its process clears the fault`);
      node.client.kill('fault none on a node that does not answer');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.keyTimer);
    for (const n of this.nodes) clearTimeout(n.probeTimer);
    await Promise.all(this.nodes.map((n) => n.client.close()));
  }

  /**
   * One request: attempts on the best node, then on others, each with the deadline
   * min(callTimeoutMs, what is left of the budget). Never waits for capacity: a full cluster is 429.
   */
  private async run<K extends OpName>(call: Extract<NodeCall, { op: K }>, deadline: number): Promise<{ value: OpResults[K]; node: string }> {
    const end = Math.min(deadline, performance.now() + this.hsm.requestBudgetMs);
    const label = labelOf(call as NodeCall);
    const report = label === undefined ? undefined : this.reports.get(label);
    if (report) this.refuseUnusable(report);
    const tried = new Set<Node>();
    let last: NodeCallError | undefined;
    let previous: Node | undefined;
    for (let attempt = 0; attempt <= this.nodes.length; attempt++) {
      const remaining = end - performance.now();
      if (remaining < MIN_CALL_MS) break;
      const choice = this.pick(tried, label) ?? (last && RETRY_SAME.has(last.kind) ? this.pick(undefined, label) : undefined);
      if (choice === 'busy') {
        if (last) break;
        throw new HsmError('ThrottlingException', 'The HSM cluster is at capacity');
      }
      if (!choice) break;
      if (previous && previous !== choice) this.emit({ kind: 'failover', node: previous.cfg.id });
      tried.add(choice);
      choice.calls++;
      const t0 = performance.now();
      try {
        const value = await choice.client.call(call, Math.min(this.hsm.callTimeoutMs, remaining));
        this.emit({ kind: 'call', node: choice.cfg.id, op: call.op, ms: performance.now() - t0, outcome: 'ok' });
        this.live(choice, 'ok');
        return { value, node: choice.cfg.id };
      } catch (err) {
        last = err instanceof NodeCallError ? err : new NodeCallError('internal', String(err));
        this.emit({ kind: 'call', node: choice.cfg.id, op: call.op, ms: performance.now() - t0, outcome: last.kind });
        if (FINAL.has(last.kind)) throw answer(last);
        this.onFailure(choice, call.op, last);
        previous = choice;
      }
    }
    throw exhausted(last);
  }

  /**
   * The node with the best weight per call in flight, skipping `tried`; 'busy' when all are full.
   * UNAVAILABLE nodes whose process runs are a last resort, used only while no node is in rotation:
   * when a stall of this process made every node look dead at once, refusing everything until the
   * prober re-admits them would turn a blip into an outage.
   */
  private pick(tried: Set<Node> | undefined, label: string | undefined): Node | 'busy' | undefined {
    const inRotation = this.nodes.some((n) => n.client.ready && n.admitted && n.tracker.health !== 'UNAVAILABLE');
    // A label the key check decided: only the nodes holding the majority's key serve it.
    const checked = label !== undefined && this.reports.has(label);
    let best: Node | undefined;
    let bestScore = 0;
    let busy = false;
    const count = this.nodes.length;
    const start = this.rr++ % count;
    for (let i = 0; i < count; i++) {
      const n = this.nodes[(start + i) % count]!;
      if (tried?.has(n) || !n.client.ready || !n.admitted || (inRotation && n.tracker.health === 'UNAVAILABLE')) continue;
      if (checked && n.keys.get(label) !== 'ok') continue;
      const inFlight = n.client.inFlight;
      if (inFlight >= n.maxInFlight) {
        busy = true;
        continue;
      }
      const score = (n.tracker.weight * HEALTH_FACTOR[n.tracker.health]) / (1 + inFlight);
      if (score > bestScore) {
        best = n;
        bestScore = score;
      }
    }
    return best ?? (busy ? 'busy' : undefined);
  }

  /** A key on no node, or split with no majority, answers at once (logged once per change by record()). */
  private refuseUnusable(report: KeyReport): void {
    if (report.state === 'absent') throw new HsmError('KeyNotFoundException', 'The key is not on the HSM', report.message);
    if (report.state === 'split') throw new HsmError('InternalException', 'The key differs between HSM nodes', report.message);
  }

  private onFailure(node: Node, op: OpName, err: NodeCallError): void {
    // A key missing on one node is that node's configuration, not its health.
    if (err.kind !== 'key-missing') this.live(node, err.kind === 'timeout' ? 'timeout' : 'error');
    const key = `${node.cfg.id}:${err.kind}:${err.ckr ?? ''}`;
    const suppressed = this.limiter.allow(key);
    if (suppressed >= 0) {
      this.logger?.warn({ node: node.cfg.id, op, failure: err.kind, ckr: err.ckr, detail: err.message, suppressed }, 'HSM call failed');
    }
  }

  private live(node: Node, outcome: 'ok' | 'error' | 'timeout'): void {
    if (node.tracker.live(outcome)) this.healthChanged(node);
  }

  private async firstProbe(node: Node): Promise<void> {
    try {
      await node.client.call({ op: 'probe' }, START_PROBE_MS);
    } catch (err) {
      const why = err instanceof NodeCallError ? (err.ckr ?? err.kind) : String(err);
      throw new HsmStartError(`HSM node ${node.cfg.id}: the first health probe failed (${why}); check the node's module and health-check key`, 'config');
    }
    node.lastProbeAt = Date.now();
  }

  /** Puts a node whose process passed its start-up probe and the key check into rotation. */
  private admit(node: Node): void {
    node.admitted = true;
    node.lastProbeAt = Date.now();
    if (node.tracker.admit()) this.healthChanged(node);
  }

  /**
   * A node process came (back) up: its own start-up did the health probe; check its keys, then
   * admit it at once, so GetHealthStatus and crypto both see it back at the same moment.
   */
  private async readmit(node: Node): Promise<void> {
    try {
      await this.checkKeys();
    } catch (err) {
      this.logger?.error({ node: node.cfg.id, err: err instanceof Error ? err.message : String(err) }, 'HSM key check failed');
    }
    if (this.closed || !node.client.ready || node.admitted) return;
    this.admit(node);
    this.scheduleProbe(node, this.hsm.probeIntervalMs);
  }


  private scheduleProbe(node: Node, delayMs: number): void {
    clearTimeout(node.probeTimer);
    if (this.closed) return;
    node.probeTimer = setTimeout(() => void this.probe(node), delayMs);
    node.probeTimer.unref();
  }

  private async probe(node: Node): Promise<void> {
    // A node without a process is probed again when it comes back up.
    if (this.closed || !node.client.ready || !this.nodes.includes(node)) return;
    let ok = false;
    try {
      await node.client.call({ op: 'probe' }, this.hsm.callTimeoutMs);
      ok = true;
    } catch (err) {
      const e = err instanceof NodeCallError ? err : new NodeCallError('internal', String(err));
      if (this.limiter.allow(`${node.cfg.id}:probe:${e.kind}`) >= 0) {
        this.logger?.warn({ node: node.cfg.id, failure: e.kind, ckr: e.ckr, detail: e.message }, 'HSM health probe failed');
      }
    }
    node.lastProbeAt = Date.now();
    if (node.tracker.probe(ok)) this.healthChanged(node);
    const healthy = node.tracker.health === 'ACTIVE';
    this.scheduleProbe(node, healthy ? this.hsm.probeIntervalMs : Math.min(this.hsm.probeIntervalMs, RECOVERY_PROBE_MS));
  }

  private onUp(node: Node): void {
    if (!this.started || !this.nodes.includes(node)) return;
    node.restarts++;
    this.emit({ kind: 'restart', node: node.cfg.id });
    this.logger?.info({ node: node.cfg.id, pid: node.client.pid }, 'HSM node process ready');
    this.notify();
    void this.readmit(node);
  }

  private onDown(node: Node): void {
    clearTimeout(node.probeTimer);
    if (!this.nodes.includes(node)) return;
    node.admitted = false;
    if (node.tracker.down()) this.logHealth(node);
    if (this.started) this.notify();
  }

  private healthChanged(node: Node): void {
    this.logHealth(node);
    if (this.started) this.notify();
  }

  private logHealth(node: Node): void {
    const health = node.tracker.health;
    const log = health === 'ACTIVE' ? this.logger?.info : this.logger?.warn;
    log?.call(this.logger, { node: node.cfg.id, health }, `HSM node ${health}`);
  }

  private notify(): void {
    const status = this.status();
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch (err) {
        this.logger?.error({ err: err instanceof Error ? err.message : String(err) }, 'HSM onChange listener failed');
      }
    }
  }
}

function labelOf(call: NodeCall): string | undefined {
  if (call.op === 'keyInfo') return call.label;
  if (call.op === 'encrypt' || call.op === 'decrypt') return call.input.label;
  return undefined;
}

/** Failures that are answers about the request itself. */
function answer(err: NodeCallError): HsmError {
  if (err.kind === 'key-usage') return new HsmError('InvalidKeyUsageException', 'The key does not allow this operation', err.message);
  return new HsmError('InvalidCiphertextException', 'The ciphertext, IV, tag, metadata or AAD is not valid', err.message);
}

/** Every attempt failed or the budget ran out. */
function exhausted(last: NodeCallError | undefined): HsmError {
  if (!last) return new HsmError('DependencyTimeoutException', 'No HSM node is available');
  if (last.kind === 'key-missing') return new HsmError('KeyNotFoundException', 'The key is not on the HSM', last.message);
  if (last.kind === 'internal') return new HsmError('InternalException', 'The HSM failed', last.message);
  return new HsmError('DependencyTimeoutException', 'The HSM did not answer in time', last.message);
}
