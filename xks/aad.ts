// HSM AAD framing («Encrypt», spec A1-A4): u16be(len(aad)) || aad || u8(len(md)) || md.
// Both lengths are always present, so metadata can never be moved into the AAD or back.
import { XksError } from './errors.js';

/** ciphertextMetadata format version 1: one byte. Bound into the tag through the HSM AAD. */
export const METADATA_V1 = Buffer.from([0x01]);
/**
 * Version 2 also binds the external key id: after the spec's framing comes u8(len(keyId)) ||
 * keyId, so a ciphertext decrypts only under the key id it was made for, even if a configuration
 * later points another key id (of any store) at the same HSM key. The key id, not the store: KMS
 * fixes a key's XksKeyId for life, while store names and URI prefixes may change.
 */
export const METADATA_V2 = Buffer.from([0x02]);
export type MetadataVersion = 1 | 2;
export const MAX_AAD_BYTES = 0xffff;
export const MAX_METADATA_BYTES = 20;

export function frameHsmAad(aad: Buffer, metadata: Buffer): Buffer {
  if (aad.length > MAX_AAD_BYTES) {
    throw new XksError('UnsupportedOperationException', `additionalAuthenticatedData above ${MAX_AAD_BYTES} bytes is not supported`);
  }
  if (metadata.length > MAX_METADATA_BYTES) {
    throw new XksError('InvalidCiphertextException', 'ciphertextMetadata is not valid');
  }
  const out = Buffer.allocUnsafe(2 + aad.length + 1 + metadata.length);
  out.writeUInt16BE(aad.length, 0);
  aad.copy(out, 2);
  out.writeUInt8(metadata.length, 2 + aad.length);
  metadata.copy(out, 3 + aad.length);
  return out;
}

/** The metadata new ciphertexts carry. */
export function metadataFor(version: MetadataVersion): Buffer {
  return version === 2 ? METADATA_V2 : METADATA_V1;
}

/**
 * The HSM AAD for `metadata` of a format this build knows (1, or 2 bound to `keyId`); anything
 * else cannot be ours: InvalidCiphertext.
 */
export function hsmAadFor(aad: Buffer, metadata: Buffer, keyId: string): Buffer {
  if (metadata.equals(METADATA_V1)) return frameHsmAad(aad, metadata);
  if (metadata.equals(METADATA_V2)) {
    const id = Buffer.from(keyId, 'latin1'); // [A-Za-z0-9._-]{1,128} (T9): one byte per character
    return Buffer.concat([frameHsmAad(aad, metadata), Buffer.from([id.length]), id]);
  }
  throw new XksError('InvalidCiphertextException', 'ciphertextMetadata is not valid');
}
