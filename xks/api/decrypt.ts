// Decrypt (spec §2.3): any tag failure, including changed AAD or ciphertextMetadata, is
// 400 InvalidCiphertextException; the plaintext is never logged (D4).
import { hsmAadFor } from '../aad.js';
import { requireUsage } from '../keys.js';
import { cryptoKey } from './key-request.js';
import { parseDecrypt } from '../validate.js';
import type { XksDeps, XksRequest } from '../context.js';

export async function decrypt(req: XksRequest, deps: XksDeps): Promise<object> {
  const body = parseDecrypt(req.body);
  const { key, info } = await cryptoKey(req, deps, body.requestMetadata);
  requireUsage(key, info, ['DECRYPT']);
  const hsmAad = hsmAadFor(body.aad, body.metadata, key.id);
  const out = await deps.hsm.decrypt(
    { label: key.label, iv: body.iv, ciphertext: body.ciphertext, tag: body.tag, hsmAad },
    req.deadline,
  );
  req.record.node = out.node;
  return { plaintext: out.plaintext.toString('base64') };
}
