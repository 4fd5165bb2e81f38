// How the cluster fails a call, in the spec's error names, without depending on the XKS layer
// above it: xks/errors.ts turns an HsmError into the reply. InvalidCiphertext and InvalidKeyUsage
// are answers about the request; the others say the HSM could not serve it.

export type HsmErrorName =
  | 'InvalidCiphertextException'
  | 'InvalidKeyUsageException'
  | 'KeyNotFoundException'
  | 'ThrottlingException'
  | 'DependencyTimeoutException'
  | 'InternalException';

export class HsmError extends Error {
  /**
   * `message` may reach KMS, so it carries no internal detail; `detail` (a node's own error text)
   * is for our log only.
   */
  constructor(
    readonly errorName: HsmErrorName,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'HsmError';
  }
}
