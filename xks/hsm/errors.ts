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

/**
 * A node that cannot start: 'pin' (wrong, locked or unreadable PIN: retrying can lock the token),
 * 'config' (module, token, health key: the configuration must change), 'runtime' (anything else).
 * The appliance maps the kind onto its exit code.
 */
export class HsmStartError extends Error {
  constructor(
    message: string,
    readonly kind: StartFailureKind,
  ) {
    super(message);
    this.name = 'HsmStartError';
  }
}

export type StartFailureKind = 'pin' | 'config' | 'runtime';

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
