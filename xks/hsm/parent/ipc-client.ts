// The call client of one node process: numbered calls, each with its own deadline, written at once
// to the process's call pipe in the framing of wire.ts, and matched to the replies read back from
// it. A plain pipe, not Node's IPC channel: the channel's serialization and framing of every
// message cost each process about as much CPU as the call itself (protocol.ts). It knows nothing
// of the process's life: the supervisor (node-client.ts) attaches each new process, detaches it
// when it exits, and hears of every answer, every missed deadline (how it tells a hung node), and
// a pipe that broke or carried garbage.
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { FrameReader } from '../frame-reader.js';
import { CALL_PIPE_FD, type CallReply, type NodeCall, type OpName, type OpResults, type WireErrorClass } from '../protocol.js';
import { decodeReply, encodeCall } from '../wire.js';

/**
 * Calls not yet taken by the process beyond this are not written: a frozen process reads nothing,
 * and what this process buffers for it must stay bounded. Such a call still waits for its deadline
 * and counts as missed, like any call to a node that does not answer, so the hang kill comes as
 * before. A process that reads keeps this near 0 (the kernel's socket buffer holds hundreds of calls).
 */
const MAX_UNSENT_BYTES = 1024 * 1024;

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

/**
 * What the supervisor hears: the node answered a call in time, a call missed its deadline, or the
 * call pipe is lost: it closed (the process is going), or carried what is no frame ('corrupt').
 */
export interface CallEvents {
  answered(): void;
  missed(): void;
  lost(why: 'closed' | 'corrupt', detail: string): void;
}

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class IpcClient {
  private child: ChildProcess | undefined;
  /** The current process's call pipe, while it is open. */
  private pipe: Socket | undefined;
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
    return this.pipe !== undefined && (this.child?.connected ?? false);
  }

  /** Calls from now on go to this process. */
  attach(child: ChildProcess): void {
    this.child = child;
    const pipe = (child.stdio[CALL_PIPE_FD] ?? undefined) as Socket | undefined;
    // None when the process could not be started: its 'exit' or 'error' follows.
    if (!pipe) return;
    this.pipe = pipe;
    const reader = new FrameReader((body) => this.onReply(decodeReply(body)));
    pipe.on('data', (chunk: Buffer) => {
      if (pipe !== this.pipe) return;
      try {
        reader.push(chunk);
      } catch (err) {
        // Never thrown into the event loop: the node is lost, not this process.
        this.lose(pipe, 'corrupt', err instanceof Error ? err.message : String(err));
      }
    });
    // 'close' follows an error too: the error only says why.
    pipe.on('error', (err) => this.lose(pipe, 'closed', err.message));
    pipe.on('close', () => this.lose(pipe, 'closed', 'call pipe closed'));
  }

  /** The process is gone: every call in flight fails as 'down'. */
  detach(): void {
    this.child = undefined;
    this.pipe?.destroy();
    this.pipe = undefined;
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
      // waiting in the pipe, and the node should not be blamed for our lateness.
      const timer = setTimeout(() => setImmediate(() => this.onTimeout(id)), timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject, timer });
      // A pipe that is closing fails the calls through detach(); one that is full, by their deadline.
      const pipe = this.pipe;
      if (pipe && pipe.writableLength < MAX_UNSENT_BYTES) pipe.write(encodeCall({ t: 'req', id, expiresAt: Date.now() + timeoutMs, call }));
    });
  }

  private onReply(msg: CallReply): void {
    const p = this.pending.get(msg.id);
    // A late answer (its call timed out already) is still a missed deadline.
    if (!p) return;
    this.events.answered();
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.value as never);
    else p.reject(new NodeCallError(msg.error.cls, msg.error.message, msg.error.ckr));
  }

  /** No call goes to this pipe again; the supervisor ends the process, whose exit detaches it. */
  private lose(pipe: Socket, why: 'closed' | 'corrupt', detail: string): void {
    if (pipe !== this.pipe) return;
    this.pipe = undefined;
    pipe.destroy();
    this.events.lost(why, detail);
  }

  private onTimeout(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(new NodeCallError('timeout', `HSM node ${this.nodeId} missed its deadline`));
    this.events.missed();
  }
}
