// Decrypt (spec §2.3): any tag failure, including changed AAD or ciphertextMetadata, is
// 400 InvalidCiphertextException; the plaintext is never logged (D4).
import { checkMetadataVersion, frameHsmAad } from '../aad.js';
import { XksError } from '../errors.js';
import { requireUsage } from '../keys.js';
import { authorize } from '../policy.js';
import { parseDecrypt } from '../validate.js';
import type { XksDeps, XksRequest } from '../context.js';

export async function decrypt(req: XksRequest, deps: XksDeps): Promise<object> {
  const body = parseDecrypt(req.body);
  const metadata = body.requestMetadata;
  req.record.kmsRequestId = metadata.kmsRequestId;
  req.record.kmsOperation = metadata.kmsOperation;
  req.record.principal = metadata.awsPrincipalArn;
  const key = deps.keys.configured(req.store, req.keyId!);
  if (!key.enabled) throw new XksError('InvalidStateException', 'The external key is disabled');
  authorize({ store: req.store, key, metadata, sourceAddress: req.sourceAddress, connectionVpceId: req.connectionVpceId });
  const info = await deps.keys.info(key, req.deadline, false);
  requireUsage(key, info, ['DECRYPT']);
  checkMetadataVersion(body.metadata);
  const out = await deps.hsm.decrypt(
    { label: key.label, iv: body.iv, ciphertext: body.ciphertext, tag: body.tag, hsmAad: frameHsmAad(body.aad, body.metadata) },
    req.deadline,
  );
  req.record.node = out.node;
  return { plaintext: out.plaintext.toString('base64') };
}
