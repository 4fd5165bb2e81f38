// The operator's side of the kill switch (xks block / unblock): name the target against the running
// configuration, write it to the HSM cluster through the block registry, record who and why.
import type { Config } from './config/schema.js';
import { ControlError } from './control/server.js';
import type { Operator } from './service.js';
import type { AdminAction } from '../xks/audit/entry.js';
import type { Block, BlockOutcome, BlockRegistry, BlockScope } from '../xks/blocks.js';

export interface BlockTarget {
  scope: BlockScope;
  store?: string | undefined;
  keyId?: string | undefined;
}

/**
 * --all, --store NAME, or --key ID (with --store NAME when the id is in more than one store).
 * Only what the configuration serves can be named: a typo must not look like a working brake.
 */
export function resolveTarget(config: Config, body: Record<string, unknown>): BlockTarget {
  const str = (k: string) => (typeof body[k] === 'string' && body[k] !== '' ? (body[k] as string) : undefined);
  const all = body['all'] === true;
  const key = str('key');
  const store = str('store');
  if ([all, key !== undefined, store !== undefined && key === undefined].filter(Boolean).length !== 1) {
    throw new ControlError('name exactly one target: --all, --store NAME, or --key ID (add --store NAME when the key id is in several stores)');
  }
  if (all) return { scope: 'all' };
  const names = config.keyStores.map((s) => s.name);
  if (store !== undefined && !names.includes(store)) throw new ControlError(`no key store "${store}" in the running configuration (stores: ${names.join(', ')})`);
  if (key === undefined) return { scope: 'store', store };
  const holders = config.keyStores.filter((s) => (store === undefined || s.name === store) && s.keys.some((k) => k.id === key));
  if (holders.length === 0) throw new ControlError(`no key "${key}" in ${store ? `key store "${store}"` : 'any key store'} of the running configuration`);
  if (holders.length > 1) throw new ControlError(`key "${key}" is in key stores ${holders.map((s) => s.name).join(', ')}: add --store NAME`);
  return { scope: 'key', store: holders[0]!.name, keyId: key };
}

const describe = (t: BlockTarget) => (t.scope === 'all' ? 'everything' : t.scope === 'store' ? `key store ${t.store}` : `key ${t.keyId} of key store ${t.store}`);

export async function setBlock(
  registry: BlockRegistry,
  config: Config,
  body: Record<string, unknown>,
  by: Operator,
  record: (a: AdminAction) => void,
  blocked: boolean,
): Promise<object> {
  const target = resolveTarget(config, body);
  const details = { scope: target.scope, keyStore: target.store, externalKeyId: target.keyId };
  let outcome: BlockOutcome;
  try {
    if (blocked) {
      const block: Block = { ...target, reason: by.reason ?? '', operator: by.operator, at: new Date().toISOString() };
      outcome = await registry.set(block);
    } else {
      outcome = await registry.clear(target);
    }
  } catch (err) {
    record({ action: blocked ? 'block' : 'unblock', ...by, outcome: 'failure', details: { ...details, error: (err as Error).message } });
    throw new ControlError(`${blocked ? 'block' : 'unblock'} of ${describe(target)} failed: ${(err as Error).message}`);
  }
  const failed = outcome.failed.map((f) => `${f.node} (${f.error})`).join(', ');
  // An unblock that missed a node is not done: that node's copy keeps the block in force.
  const complete = blocked || outcome.failed.length === 0;
  record({ action: blocked ? 'block' : 'unblock', ...by, outcome: complete ? 'success' : 'failure', details: { ...details, nodes: outcome.done.join(','), failedNodes: failed || undefined } });
  if (!complete) throw new ControlError(`unblock of ${describe(target)} is not complete: ${failed} still hold the block, which stays in force; run unblock again once the node answers`);
  return {
    [blocked ? 'blocked' : 'unblocked']: describe(target),
    ...target,
    nodes: outcome.done,
    ...(failed ? { warning: `not written on ${failed}: the block holds through the other nodes` } : {}),
    active: registry.list(),
  };
}
