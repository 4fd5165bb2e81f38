// The kill switch: blocks at key, key-store and global scope. They live on the HSM tokens as data
// objects (CKA_APPLICATION "xks-appliance", CKA_LABEL "xks-block:<scope>:<name>"), written to every
// node, because the HSM cluster is what every proxy instance already shares: a block set on one
// instance reaches the others through their own polling, and survives restarts. Reading is
// fail-safe: a block seen on any node holds, and a node that cannot be read keeps its last-known
// blocks.
import type { HsmCluster } from './hsm/types.js';

export type BlockScope = 'key' | 'store' | 'all';

export interface Block {
  scope: BlockScope;
  /** The key store (scopes key and store). */
  store?: string | undefined;
  /** The externalKeyId (scope key). */
  keyId?: string | undefined;
  reason: string;
  operator: string;
  /** ISO time the block was set. */
  at: string;
}

export interface BlockView {
  /** The block that holds for this store (and key): global first, then store, then key. */
  find(store: string, keyId?: string): Block | undefined;
}

export const NO_BLOCKS: BlockView = { find: () => undefined };

export const STATE_APPLICATION = 'xks-appliance';
const PREFIX = 'xks-block:';

export function blockLabel(b: Pick<Block, 'scope' | 'store' | 'keyId'>): string {
  if (b.scope === 'all') return `${PREFIX}all:*`;
  if (b.scope === 'store') return `${PREFIX}store:${b.store}`;
  return `${PREFIX}key:${b.store}/${b.keyId}`;
}

function parseBlock(label: string, value: Buffer): Block | undefined {
  if (!label.startsWith(PREFIX)) return undefined;
  let b: Partial<Block>;
  try {
    b = JSON.parse(value.toString('utf8')) as Partial<Block>;
  } catch {
    b = {};
  }
  // The label is what counts: an unreadable value still blocks what its label names.
  const [scope, name = ''] = label.slice(PREFIX.length).split(/:(.*)/s) as [string, string?];
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const base = { reason: text(b.reason), operator: text(b.operator), at: text(b.at) };
  if (scope === 'all') return { scope, ...base };
  if (scope === 'store') return { scope, store: name, ...base };
  if (scope === 'key' && name.includes('/')) return { scope, store: name.slice(0, name.indexOf('/')), keyId: name.slice(name.indexOf('/') + 1), ...base };
  return undefined;
}

export interface BlockOutcome {
  /** Nodes that now hold the change. */
  done: string[];
  /** Nodes that could not be written, with why. */
  failed: Array<{ node: string; error: string }>;
}

export interface BlockRegistryOptions {
  /** How often every node is read (the other instances' changes arrive within this plus a read). */
  pollMs: number;
  /** Deadline of one read or write on one node. */
  callTimeoutMs: number;
  onChange?(blocks: readonly Block[]): void;
  onReadError?(node: string, error: string): void;
}

export class BlockRegistry implements BlockView {
  /** Last-known blocks per node, by label. */
  private readonly perNode = new Map<string, Map<string, Block>>();
  private active = new Map<string, Block>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private polling = false;

  constructor(
    private readonly hsm: HsmCluster,
    private readonly opts: BlockRegistryOptions,
  ) {}

  /** Reads the blocks once (before serving), then keeps polling. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => this.poll(), this.opts.pollMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  find(store: string, keyId?: string): Block | undefined {
    if (this.active.size === 0) return undefined;
    return (
      this.active.get(blockLabel({ scope: 'all' })) ??
      this.active.get(blockLabel({ scope: 'store', store })) ??
      (keyId === undefined ? undefined : this.active.get(blockLabel({ scope: 'key', store, keyId })))
    );
  }

  list(): Block[] {
    return [...this.active.values()];
  }

  /** Write the block to every node; it holds once one node has it. Throws when none could be written. */
  async set(block: Block): Promise<BlockOutcome> {
    const results = await this.hsm.putState(STATE_APPLICATION, blockLabel(block), Buffer.from(JSON.stringify(block)), this.opts.callTimeoutMs);
    const outcome = split(results);
    if (outcome.done.length === 0) throw new Error(`no HSM node could record the block (${outcome.failed.map((f) => `${f.node}: ${f.error}`).join(', ')})`);
    await this.refresh();
    return outcome;
  }

  /** Remove the block from every node; a node that could not be written keeps it in force. */
  async clear(target: Pick<Block, 'scope' | 'store' | 'keyId'>): Promise<BlockOutcome> {
    const results = await this.hsm.deleteState(STATE_APPLICATION, blockLabel(target), this.opts.callTimeoutMs);
    const outcome = split(results);
    await this.refresh();
    return outcome;
  }

  /** Read every node now; queued behind a read in progress, so it sees any change made before. */
  refresh(): Promise<void> {
    const next = this.chain.then(() => this.read());
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** The timer's read: skipped while the last one has not come back (a slow node). */
  private poll(): void {
    if (this.polling) return;
    this.polling = true;
    void this.refresh().finally(() => (this.polling = false));
  }

  private async read(): Promise<void> {
    const results = await this.hsm.listState(STATE_APPLICATION, this.opts.callTimeoutMs);
    const current = new Set(results.map((r) => r.node));
    for (const node of this.perNode.keys()) if (!current.has(node)) this.perNode.delete(node);
    for (const r of results) {
      if (!r.ok) {
        this.opts.onReadError?.(r.node, r.error);
        continue;
      }
      const blocks = new Map<string, Block>();
      for (const o of r.value) {
        const b = parseBlock(o.label, o.value);
        if (b) blocks.set(o.label, b);
      }
      this.perNode.set(r.node, blocks);
    }
    const next = new Map<string, Block>();
    for (const blocks of this.perNode.values()) for (const [label, b] of blocks) if (!next.has(label)) next.set(label, b);
    const changed = next.size !== this.active.size || [...next.keys()].some((k) => !this.active.has(k));
    this.active = next;
    if (changed) this.opts.onChange?.(this.list());
  }
}

function split<T>(results: ReadonlyArray<{ node: string; ok: true; value: T } | { node: string; ok: false; error: string }>): BlockOutcome {
  return {
    done: results.filter((r) => r.ok).map((r) => r.node),
    failed: results.flatMap((r) => (r.ok ? [] : [{ node: r.node, error: r.error }])),
  };
}
