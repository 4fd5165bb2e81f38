// Secondary authorization (spec Z1): per key store, after authentication and key lookup.
// GetHealthStatus is never subject to it (H5). A deny names the rule that denied, for the log.
import type { KeyConfig } from '../appliance/config/schema.js';
import { XksError } from './errors.js';
import type { KeyStore } from './keystore.js';
import type { RequestMetadata } from './validate.js';

export interface PolicyInput {
  store: KeyStore;
  key: KeyConfig;
  metadata: RequestMetadata;
  sourceAddress: string | undefined;
  /** VPC endpoint id from the PROXY v2 TLV, when the connection came through an AWS NLB. */
  connectionVpceId: string | undefined;
}

export class AccessDenied extends XksError {
  constructor(readonly rule: string) {
    super('AccessDeniedException', 'Access denied by the proxy authorization policy');
  }
}

/** Throws AccessDenied naming the rule; returns when the request may proceed. */
export function authorize(input: PolicyInput): void {
  const vpce = input.store.config.vpcEndpoints;
  if (vpce && vpce.length > 0) {
    const seen = input.connectionVpceId ?? input.metadata.awsSourceVpce;
    if (!seen || !vpce.includes(seen)) throw new AccessDenied(`keyStores[${input.store.name}].vpcEndpoints`);
  }
}
