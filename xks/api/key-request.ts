// The steps Encrypt and Decrypt share after validation (spec §7, steps 6-9 up to usage): note the
// request in its record, find the key, refuse a disabled one, apply the policy, read the token.
import type { KeyConfig } from '../options.js';
import { XksError } from '../errors.js';
import type { KeyInfo } from '../hsm/types.js';
import { AccessDenied, authorize } from '../policy.js';
import type { RequestMetadata } from '../validate.js';
import type { XksDeps, XksRequest } from '../context.js';

export function noteMetadata(req: XksRequest, metadata: RequestMetadata): void {
  req.record.kmsRequestId = metadata.kmsRequestId;
  req.record.kmsOperation = metadata.kmsOperation;
  if (metadata.awsPrincipalArn !== undefined) req.record.principal = metadata.awsPrincipalArn;
  if (metadata.kmsKeyArn !== undefined) req.record.kmsKeyArn = metadata.kmsKeyArn;
  if (metadata.kmsViaService !== undefined) req.record.kmsViaService = metadata.kmsViaService;
}

/** Secondary authorization; a denial names its rule in the record (the audit trail's policyRule). */
export function authorizeRequest(req: XksRequest, key: KeyConfig, metadata: RequestMetadata): void {
  try {
    authorize({ store: req.store, key, metadata, sourceAddress: req.sourceAddress, connectionVpceId: req.connectionVpceId });
  } catch (err) {
    if (err instanceof AccessDenied) req.record.policyRule = err.rule;
    throw err;
  }
}

export async function cryptoKey(req: XksRequest, deps: XksDeps, metadata: RequestMetadata): Promise<{ key: KeyConfig; info: KeyInfo }> {
  noteMetadata(req, metadata);
  const key = deps.keys.configured(req.store, req.keyId!);
  if (!key.enabled) throw new XksError('InvalidStateException', 'The external key is disabled');
  const block = deps.blocks.find(req.store.name, key.id);
  if (block) throw new XksError('InvalidStateException', 'The external key is blocked', `blocked (${block.scope}) by ${block.operator}: ${block.reason}`);
  authorizeRequest(req, key, metadata);
  return { key, info: await deps.keys.info(key, req.deadline, false) };
}
