// HSM AAD framing («Encrypt», spec A1-A4): u16be(len(aad)) || aad || u8(len(md)) || md.
// Both lengths are always present, so metadata can never be moved into the AAD or back.
import { XksError } from './errors.js';

/** ciphertextMetadata format version 1: one byte. Bound into the tag through the HSM AAD. */
export const METADATA_V1 = Buffer.from([0x01]);
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

/** The metadata formats this build can decrypt. Anything else cannot be ours: InvalidCiphertext. */
export function checkMetadataVersion(metadata: Buffer): void {
  if (!metadata.equals(METADATA_V1)) {
    throw new XksError('InvalidCiphertextException', 'ciphertextMetadata is not valid');
  }
}
