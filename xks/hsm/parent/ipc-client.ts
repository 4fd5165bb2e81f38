// The IPC client of one node process: numbered calls, each with its own deadline, sent at once in
// the binary framing of wire.ts and matched to their replies. It knows nothing of the
// process's life: the supervisor (node-client.ts) attaches each new process, detaches it when it
// exits, and hears of every answer and every missed deadline (how it tells a hung node).
import type { ChildProcess } from 'node:child_process';
import type { CallReply, NodeCall, OpName, OpResults, WireErrorClass } from '../protocol.js';
import { encodeCall } from '../wire.js';

export type CallFailure = WireErrorClass | 'timeout' | 'down';

export class NodeCallError extends Error {
  constructor(
    readonly kind: CallFailure,
    message: string,
    readonly ckr?: string,
  ) {
    super(message);
    this.name = 'NodeCallError';
  }
}

/** What the supervisor hears: the node answered a call in time, or a call missed its deadline. */
export interface CallEvents {
  answered(): void;
  missed(): void;
}

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class IpcClient {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private readonly nodeId: string,
    private readonly events: CallEvents,
  ) {}

  get inFlight(): number {
    return this.pending.size;
  }

  get connected(): boolean {
    return this.child?.connected ?? false;
  }

  /** Calls from now on go to this process. */
  attach(child: ChildProcess): void {
    this.child = child;
  }

  /** The process is gone: every call in flight fails as 'down'. */
  detach(): void {
    this.child = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new NodeCallError('down', `HSM node ${this.nodeId} process exited`));
      this.pending.delete(id);
    }
  }

  call<K extends OpName>(call: Extract<NodeCall, { op: K }>, timeoutMs: number): Promise<OpResults[K]> {
    const id = this.nextId++;
    return new Promise<OpResults[K]>((resolve, reject) => {
      // Checked after the I/O phase: when this process itself was stalled, a reply may already be
      // waiting in the channel, and the node should not be blamed for our lateness.
      const timer = setTimeout(() => setImmediate(() => this.onTimeout(id)), timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject, timer });
      // A send that fails means the channel is closing: detach() rejects the calls.
      if (this.child?.connected) this.child.send(encodeCall({ t: 'req', id, expiresAt: Date.now() + timeoutMs, call }));
    });
  }

  onReply(msg: CallReply): void {
    const p = this.pending.get(msg.id);
    // A late answer (its call timed out already) is still a missed deadline.
    if (!p) return;
    this.events.answered();
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.value as never);
    else p.reject(new NodeCallError(msg.error.cls, msg.error.message, msg.error.ckr));
  }

  private onTimeout(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(new NodeCallError('timeout', `HSM node ${this.nodeId} missed its deadline`));
    this.events.missed();
  }
}
