// Ciphertext data integrity value («Appendix C», spec C1): SHA-256 over the decoded request AAD,
// ciphertextMetadata, IV, ciphertext and tag, concatenated with no lengths.
import { createHash } from 'node:crypto';

export function computeCdiv(aad: Buffer, metadata: Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer): Buffer {
  return createHash('sha256').update(aad).update(metadata).update(iv).update(ciphertext).update(tag).digest();
}
