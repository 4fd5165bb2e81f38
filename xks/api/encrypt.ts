// Encrypt (spec §2.2): AES-GCM on the HSM with the framed AAD (§2.4), a versioned
// ciphertextMetadata, and the CDIV computed before a verification decrypt (§2.5, C3).
import { hsmAadFor, metadataFor } from '../aad.js';
import { requireUsage } from '../keys.js';
import { cryptoKey } from './key-request.js';
import { parseEncrypt } from '../validate.js';
import type { XksDeps, XksRequest } from '../context.js';

export async function encrypt(req: XksRequest, deps: XksDeps): Promise<object> {
  const body = parseEncrypt(req.body);
  const { key, info } = await cryptoKey(req, deps, body.requestMetadata);
  // The CDIV needs a verification decrypt, so it needs DECRYPT too (C4).
  requireUsage(key, info, body.cdiv ? ['ENCRYPT', 'DECRYPT'] : ['ENCRYPT']);
  const metadata = metadataFor(deps.proxy.ciphertextMetadataVersion);
  const hsmAad = hsmAadFor(body.aad, metadata, key.id);
  const out = await deps.hsm.encrypt(
    { label: key.label, plaintext: body.plaintext, hsmAad, ...(body.cdiv ? { cdiv: { aad: body.aad, metadata } } : {}) },
    req.deadline,
  );
  req.record.node = out.node;
  return {
    ciphertext: out.ciphertext.toString('base64'),
    ciphertextMetadata: metadata.toString('base64'),
    initializationVector: out.iv.toString('base64'),
    authenticationTag: out.tag.toString('base64'),
    ...(out.cdiv ? { ciphertextDataIntegrityValue: out.cdiv.toString('base64') } : {}),
  };
}
