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
import type { NodeCall, OpName, OpResults } from '../protocol.js';
import type { DecryptInput, DecryptOutput, EncryptInput, EncryptOutput, Fault, HsmCluster, HsmEvent, HsmReconfiguration, KeyInfo, NodeHealth, NodeOutcome, NodeStatus, StateObject } from '../types.js';

/** Calls in flight per node before new requests are refused (429) rather than queued. */
const IN_FLIGHT_PER_SESSION = 8;
const MIN_IN_FLIGHT = 32;
/** Below this much budget a call cannot succeed: answer 503 now. */
const MIN_CALL_MS = 1;
/** The first probe is not on a request path: a slow start is not a failure. */
const START_PROBE_MS = 5000;
/** How often a node out of rotation is probed, at most. */
const RECOVERY_PROBE_MS = 200;

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

  constructor(
    private hsm: HsmOptions,
    private readonly logger?: Logger,
  ) {
    // Before any process starts: each node gets its own PIN variable only (pin-env.ts). Kept by
    // name, so a node a reload adds or changes finds its variable too.
    for (const [id, pin] of takePinVariables(hsm.nodes)) this.pins.set(hsm.nodes.find((n) => n.id === id)!.pin.env!, pin);
    this.nodes = hsm.nodes.map((cfg) => this.makeNode(cfg, hsm));
  }

  private makeNode(cfg: HsmNodeOptions, hsm: HsmOptions): Node {
    const pin = cfg.pin.env === undefined ? undefined : this.pins.get(cfg.pin.env);
    const client = new NodeClient(cfg, { healthKeyLabel: hsm.healthKeyLabel, callTimeoutMs: hsm.callTimeoutMs, hangKillAfterMs: hsm.hangKillAfterMs, pin, logger: this.logger });
    const node: Node = {
      client,
      cfg,
      tracker: new NodeHealthTracker(),
      maxInFlight: Math.max(MIN_IN_FLIGHT, cfg.sessions * IN_FLIGHT_PER_SESSION),
      calls: 0,
      restarts: 0,
      lastProbeAt: undefined,
      probeTimer: undefined,
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
    const fresh = next.nodes.filter((c) => !kept.has(c.id)).map((cfg) => this.makeNode(cfg, next));
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
        for (const n of fresh) this.scheduleProbe(n, this.hsm.probeIntervalMs);
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

  async start(): Promise<void> {
    const results = await Promise.allSettled(this.nodes.map((n) => n.client.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.close();
      throw failed.reason;
    }
    try {
      await Promise.all(this.nodes.map((n) => this.firstProbe(n)));
    } catch (err) {
      await this.close();
      throw err;
    }
    this.started = true;
    for (const n of this.nodes) this.scheduleProbe(n, this.hsm.probeIntervalMs);
    this.notify();
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
    return this.nodes.map((n) => ({
      id: n.cfg.id,
      model: n.cfg.model,
      health: n.tracker.health,
      pid: n.client.pid,
      lastProbeAt: n.lastProbeAt,
      calls: n.calls,
      inFlight: n.client.inFlight,
      sessions: n.cfg.sessions,
      restarts: n.restarts,
    }));
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
    await node.client.call({ op: 'fault', fault }, 5000);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const n of this.nodes) clearTimeout(n.probeTimer);
    await Promise.all(this.nodes.map((n) => n.client.close()));
  }

  /**
   * One request: attempts on the best node, then on others, each with the deadline
   * min(callTimeoutMs, what is left of the budget). Never waits for capacity: a full cluster is 429.
   */
  private async run<K extends OpName>(call: Extract<NodeCall, { op: K }>, deadline: number): Promise<{ value: OpResults[K]; node: string }> {
    const end = Math.min(deadline, performance.now() + this.hsm.requestBudgetMs);
    const tried = new Set<Node>();
    let last: NodeCallError | undefined;
    let previous: Node | undefined;
    for (let attempt = 0; attempt <= this.nodes.length; attempt++) {
      const remaining = end - performance.now();
      if (remaining < MIN_CALL_MS) break;
      const choice = this.pick(tried) ?? (last && RETRY_SAME.has(last.kind) ? this.pick(undefined) : undefined);
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
  private pick(tried: Set<Node> | undefined): Node | 'busy' | undefined {
    const inRotation = this.nodes.some((n) => n.client.ready && n.tracker.health !== 'UNAVAILABLE');
    let best: Node | undefined;
    let bestScore = 0;
    let busy = false;
    const count = this.nodes.length;
    const start = this.rr++ % count;
    for (let i = 0; i < count; i++) {
      const n = this.nodes[(start + i) % count]!;
      if (tried?.has(n) || !n.client.ready || (inRotation && n.tracker.health === 'UNAVAILABLE')) continue;
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
    node.tracker.admit();
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
    this.scheduleProbe(node, 0);
    this.notify();
  }

  private onDown(node: Node): void {
    clearTimeout(node.probeTimer);
    if (!this.nodes.includes(node)) return;
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
