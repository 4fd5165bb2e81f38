// The parent's handle on one HSM node process, and its supervisor: start the process
// (spawn-node.ts), pass calls to it (ipc-client.ts), and keep it alive. A process that dies is
// restarted with back-off; one that stops answering (missed deadlines with no answer in between)
// or sends garbage on its call pipe is killed with SIGKILL and restarted; one whose PIN was
// refused is left down.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { HsmNodeOptions } from '../options.js';
import { LogLimiter } from './log-limiter.js';
import type { PinVariable } from './pin-env.js';
import { HsmStartError, type StartFailureKind } from '../errors.js';
import { NODE_NOTICE, type ChildMessage, type InitMessage, type NodeCall, type OpName, type OpResults } from '../protocol.js';
import { IpcClient, NodeCallError } from './ipc-client.js';
import { spawnNodeProcess } from './spawn-node.js';

export interface NodeClientOptions {
  healthKeyLabel: string;
  /** The usual per-call deadline; the unresponsiveness window is measured in it. */
  callTimeoutMs: number;
  /** Consecutive missed deadlines before SIGKILL... */
  maxMisses?: number;
  /** ...with nothing answered for this long (default: maxMisses call timeouts). */
  hangKillAfterMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** A process that was up this long before dying restarts after backoffMinMs again. */
  stableMs?: number;
  startTimeoutMs?: number;
  /**
   * A first start that fails for any reason but the PIN is retried with back-off, like a process
   * lost at run time (the start() promise still rejects, so the caller can report it).
   */
  retryStart?: boolean;
  /** This node's own PIN variable (pin.env), put into its process's environment only. */
  pin?: PinVariable | undefined;
  logger?: Logger | undefined;
}

/** How long a process whose call pipe closed has to exit by itself. */
const PIPE_LOST_GRACE_MS = 1000;

type State = 'idle' | 'starting' | 'ready' | 'down' | 'closed';

/**
 * Events: 'up' (pid) when a process is ready, 'down' (reason) when it is gone, 'fatal' (line) when
 * a restarted process reports a configuration it cannot work with.
 */
export class NodeClient extends EventEmitter {
  readonly id: string;
  private child: ChildProcess | undefined;
  private state: State = 'idle';
  private readonly ipc: IpcClient;
  private misses = 0;
  private lastAnswerAt = 0;
  private readyAt = 0;
  private nextBackoff: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private firstStart: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private pinRefused = false;
  /** A process killed after a failed first start, until it has exited. */
  private dying: Promise<void> | undefined;
  /** Why this node is out for good (its PIN was refused): only a human can bring it back. */
  refusal: string | undefined;
  private readonly limiter = new LogLimiter();
  private readonly opts: Required<Omit<NodeClientOptions, 'logger' | 'pin'>> & { logger: Logger | undefined; pin: PinVariable | undefined };

  constructor(
    private readonly cfg: HsmNodeOptions,
    opts: NodeClientOptions,
  ) {
    super();
    this.id = cfg.id;
    const maxMisses = opts.maxMisses ?? 3;
    this.opts = {
      maxMisses,
      hangKillAfterMs: maxMisses * opts.callTimeoutMs,
      backoffMinMs: 100,
      backoffMaxMs: 5000,
      stableMs: 10_000,
      startTimeoutMs: 30_000,
      retryStart: false,
      ...opts,
      logger: opts.logger,
      pin: opts.pin,
    };
    this.nextBackoff = this.opts.backoffMinMs;
    this.ipc = new IpcClient(this.id, { answered: () => this.onAnswered(), missed: () => this.onMissed(), lost: (why, detail) => this.onPipeLost(why, detail) });
  }

  /** The process holding this node's sessions, while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  get inFlight(): number {
    return this.ipc.inFlight;
  }

  /** Resolves when the first process is ready; rejects with its one-line fatal error otherwise. */
  start(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error(`HSM node ${this.id} was started already`));
    return new Promise((resolve, reject) => {
      this.firstStart = { resolve, reject };
      this.spawn();
    });
  }

  call<K extends OpName>(call: Extract<NodeCall, { op: K }>, timeoutMs: number): Promise<OpResults[K]> {
    if (this.state !== 'ready' || !this.ipc.connected) {
      return Promise.reject(new NodeCallError('down', `HSM node ${this.id} is not running`));
    }
    return this.ipc.call(call, timeoutMs);
  }

  /** SIGKILL the current process; the supervisor restarts it. */
  kill(reason: string): void {
    if (!this.child) return;
    this.opts.logger?.warn({ node: this.id, pid: this.child.pid, reason }, 'killing HSM node process');
    this.child.kill('SIGKILL');
  }

  async close(): Promise<void> {
    const child = this.child;
    this.state = 'closed';
    clearTimeout(this.restartTimer);
    await this.dying;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Ask nicely (the child finalizes its module on disconnect); a frozen one gets SIGKILL.
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
    await exited;
    clearTimeout(timer);
  }

  private spawn(): void {
    this.state = 'starting';
    let child: ChildProcess;
    try {
      child = spawnNodeProcess(this.cfg, this.opts.pin);
    } catch (err) {
      const line = `HSM node ${this.id}: cannot start its process (${err instanceof Error ? err.message : String(err)})`;
      if (this.firstStart) this.onStartFailure(line, 'runtime');
      else {
        this.opts.logger?.error({ node: this.id }, line);
        this.scheduleRestart();
      }
      return;
    }
    this.child = child;
    this.ipc.attach(child);
    let stderrTail = '';
    let partial = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      stderrTail = (stderrTail + text).slice(-2048);
      // The node's own one-off warnings are whole lines with the NODE_NOTICE prefix.
      const lines = (partial + text).split('\n');
      partial = lines.pop()!.slice(-4096);
      for (const line of lines) if (line.startsWith(NODE_NOTICE)) this.opts.logger?.warn({ node: this.id }, `HSM node ${this.id}: ${line.slice(NODE_NOTICE.length)}`);
    });
    const startTimer = setTimeout(() => this.kill(`not ready within ${this.opts.startTimeoutMs} ms`), this.opts.startTimeoutMs);
    child.on('message', (msg: ChildMessage) => {
      if (child === this.child) this.onMessage(child, msg, startTimer);
    });
    child.on('error', (err) => {
      this.opts.logger?.debug({ node: this.id, err: err.message }, 'HSM node process error');
      // A process that never started may not emit 'exit'.
      if (child.pid === undefined) this.onExit(child, null, null, '');
    });
    child.once('exit', (code, signal) => {
      clearTimeout(startTimer);
      this.onExit(child, code, signal, stderrTail);
    });
    const init: InitMessage = { t: 'init', node: this.cfg, healthKeyLabel: this.opts.healthKeyLabel };
    child.send(init);
  }

  private onAnswered(): void {
    this.misses = 0;
    this.lastAnswerAt = Date.now();
  }

  /**
   * Garbage on the call pipe: the process cannot be trusted with another call. A closed pipe means
   * the process is exiting; one still running a moment later has lost its calls for good.
   */
  private onPipeLost(why: 'closed' | 'corrupt', detail: string): void {
    const child = this.child;
    if (!child || this.state === 'closed') return;
    if (why === 'corrupt') return this.kill(`corrupt call pipe (${detail})`);
    setTimeout(() => {
      if (child === this.child && child.exitCode === null && child.signalCode === null) this.kill(`call pipe lost (${detail})`);
    }, PIPE_LOST_GRACE_MS).unref();
  }

  private onMessage(child: ChildProcess, msg: ChildMessage, startTimer: NodeJS.Timeout): void {
    if (msg.t === 'ready') {
      clearTimeout(startTimer);
      if (this.state === 'closed') return;
      this.state = 'ready';
      this.readyAt = this.lastAnswerAt = Date.now();
      this.misses = 0;
      this.firstStart?.resolve();
      this.firstStart = undefined;
      this.emit('up', child.pid);
      return;
    }
    if (msg.t === 'fatal') {
      if (this.firstStart) this.onStartFailure(msg.message, msg.kind);
      else {
        // A PIN that stopped working is never tried again by itself: retries can lock the token.
        if (msg.kind === 'pin') this.refuse(msg.message);
        if (this.limiter.allow('fatal') >= 0) this.opts.logger?.error({ node: this.id }, msg.message);
        this.emit('fatal', msg.message);
      }
    }
  }

  /** Hung, not merely slow: several missed deadlines and no answer at all for hangKillAfterMs. */
  private onMissed(): void {
    this.misses++;
    const silentMs = Date.now() - this.lastAnswerAt;
    if (this.misses >= this.opts.maxMisses && silentMs >= this.opts.hangKillAfterMs) {
      this.kill(`${this.misses} missed deadlines, nothing answered for ${silentMs} ms`);
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, stderrTail: string): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.ipc.detach();
    const wasReady = this.state === 'ready';
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (this.firstStart) {
      this.onStartFailure(`HSM node ${this.id}: its process exited during start-up (${how}); check the module and its configuration`, 'runtime');
      return;
    }
    if (this.state === 'closed') return;
    this.state = 'down';
    this.emit('down', how);
    if (this.pinRefused) {
      this.opts.logger?.error({ node: this.id }, `HSM node ${this.id} is not restarted: its PIN was refused; fix the PIN, then restart the service`);
      return;
    }
    if (wasReady && Date.now() - this.readyAt >= this.opts.stableMs) this.nextBackoff = this.opts.backoffMinMs;
    const delay = this.scheduleRestart();
    if (this.limiter.allow('exit') >= 0) {
      this.opts.logger?.warn({ node: this.id, pid: child.pid, exit: how, restartInMs: delay }, 'HSM node process exited');
      if (stderrTail) this.opts.logger?.debug({ node: this.id, stderr: stderrTail }, 'HSM node process stderr');
    }
  }

  /** Restarts after the current back-off (doubling up to backoffMaxMs); returns the delay. */
  private scheduleRestart(): number {
    this.state = 'down';
    const delay = this.nextBackoff;
    this.nextBackoff = Math.min(this.nextBackoff * 2, this.opts.backoffMaxMs);
    this.restartTimer = setTimeout(() => {
      if (this.state === 'down') this.spawn();
    }, delay);
    return delay;
  }

  /**
   * The first start failed: report once; make sure no process is left; then stop supervising, or
   * (retryStart, not a PIN) keep trying with back-off like a node lost at run time.
   */
  private onStartFailure(line: string, kind: StartFailureKind): void {
    const first = this.firstStart;
    this.firstStart = undefined;
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      // close() waits for it: nothing of a node may outlive the cluster.
      this.dying = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
    }
    if (kind === 'pin') this.refuse(line);
    if (this.opts.retryStart && kind !== 'pin' && this.state !== 'closed') {
      this.ipc.detach();
      this.scheduleRestart();
    } else {
      this.state = 'closed';
    }
    first?.reject(new HsmStartError(line, kind));
  }

  private refuse(line: string): void {
    this.pinRefused = true;
    this.refusal = line;
  }
}
