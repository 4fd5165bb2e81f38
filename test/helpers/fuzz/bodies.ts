// Valid requests of each API, the starting point of every case.
import { Rng } from '../rng.js';
import type { Api, FuzzTarget, SealedInput } from './target.js';
function uuid(r: Rng): string {
  const h = r.hex(32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
}

/** A valid body for `api`; a decrypt body carries `sealed` (by default one drawn here). */
export function baseBody(api: Api, r: Rng, t: FuzzTarget, sealed: SealedInput = r.pick(t.sealed)): Record<string, unknown> {
  const requestMetadata: Record<string, unknown> = {
    kmsRequestId: uuid(r),
    kmsOperation: { health: 'KmsHealthCheck', metadata: 'DescribeKey', encrypt: 'Encrypt', decrypt: 'Decrypt' }[api],
  };
  if (api !== 'health') {
    requestMetadata['awsPrincipalArn'] = `arn:aws:iam::123456789012:user/fuzz-${r.int(100)}`;
    requestMetadata['kmsKeyArn'] = `arn:aws:kms:${t.region}:123456789012:key/${uuid(r)}`;
    if (r.chance(0.3)) requestMetadata['kmsViaService'] = r.pick(['ebs', 's3', 'rds']);
  }
  const body: Record<string, unknown> = { requestMetadata };
  if (api === 'encrypt') {
    body['plaintext'] = r.bytes(r.pick([0, 1, 16, 32, 64, 256])).toString('base64');
    body['encryptionAlgorithm'] = 'AES_GCM';
    if (r.chance(0.5)) body['additionalAuthenticatedData'] = r.bytes(r.range(1, 64)).toString('base64');
    if (r.chance(0.5)) body['ciphertextDataIntegrityValueAlgorithm'] = 'SHA_256';
  } else if (api === 'decrypt') {
    const { keyId: _keyId, plaintext: _plaintext, ...fields } = sealed;
    Object.assign(body, fields, { encryptionAlgorithm: 'AES_GCM' });
  }
  return body;
}

export function apiPath(api: Api, r: Rng, t: FuzzTarget, keyId: string): string {
  if (api === 'health') return `${t.uriPath}/health`;
  return `${t.uriPath}/keys/${r.chance(0.85) ? keyId : r.pick(t.keyIds)}/${api}`;
}
