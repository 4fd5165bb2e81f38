// GetKeyMetadata (spec §2.1): the real key attributes from the token; a disabled key answers 200
// with keyStatus DISABLED (K4) and KMS refuses it itself.
import { keySpecOf, reportedUsage } from '../keys.js';
import { parseRequestMetadata } from '../validate.js';
import { authorizeRequest, noteMetadata } from './key-request.js';
import type { XksDeps, XksRequest } from '../context.js';

export async function getKeyMetadata(req: XksRequest, deps: XksDeps): Promise<object> {
  const metadata = parseRequestMetadata(req.body, 'metadata');
  noteMetadata(req, metadata);
  const key = deps.keys.configured(req.store, req.keyId!);
  authorizeRequest(req, key, metadata);
  const info = await deps.keys.info(key, req.deadline, true);
  return {
    keySpec: keySpecOf(info),
    keyUsage: reportedUsage(key, info),
    // A blocked key reports DISABLED, as a disabled one does (K4).
    keyStatus: key.enabled && !deps.blocks.find(req.store.name, key.id) ? 'ENABLED' : 'DISABLED',
  };
}
