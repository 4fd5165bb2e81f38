// The xks/ side of a request, after the gateway has routed and authenticated it: key store state,
// then the operation's own lifecycle (validate, key, policy, usage, sizes, crypto; spec §7).
import { XksError } from './errors.js';
import { decrypt } from './api/decrypt.js';
import { encrypt } from './api/encrypt.js';
import { getHealthStatus } from './api/health.js';
import { getKeyMetadata } from './api/metadata.js';
import type { XksDeps, XksRequest } from './context.js';
import type { Operation } from './validate.js';

const HANDLERS: Record<Operation, (req: XksRequest, deps: XksDeps) => Promise<object>> = {
  metadata: getKeyMetadata,
  encrypt,
  decrypt,
  health: getHealthStatus,
};

export async function handleXks(req: XksRequest, deps: XksDeps): Promise<object> {
  req.record.store = req.store.name;
  req.record.operation = req.operation;
  if (req.keyId !== undefined) req.record.keyId = req.keyId;
  if (!req.store.config.enabled) {
    throw new XksError('InvalidStateException', 'The external key store is disabled');
  }
  // Kill switch (store or global): crypto and key metadata refused; GetHealthStatus still answers,
  // so KMS keeps the key store connected while it is blocked.
  const block = req.operation === 'health' ? undefined : deps.blocks.find(req.store.name);
  if (block) throw new XksError('InvalidStateException', 'The external key store is blocked', `blocked (${block.scope}) by ${block.operator}: ${block.reason}`);
  // GetHealthStatus is never throttled by the store's quota: a busy store must not look unhealthy to KMS.
  if (req.operation !== 'health' && req.store.quota && !req.store.quota.take()) {
    throw new XksError('ThrottlingException', 'The request rate of this key store is above its quota');
  }
  return HANDLERS[req.operation](req, deps);
}
