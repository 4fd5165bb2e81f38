// What the XKS layer takes: key stores, their keys and credentials, secondary-authorization rules
// and the proxy facts GetHealthStatus reports. Declared here, by the layer that uses them;
// appliance/config/schema.ts validates the configuration into these shapes.

/** Every XKS API path ends in <uriPathPrefix>/kms/xks/v1/… (spec T7). */
export const XKS_PATH_SUFFIX = '/kms/xks/v1';

export const KEY_USAGES = ['ENCRYPT', 'DECRYPT'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

/** One credential set of a key store: SigV4 access key id and raw secret (spec S6, S7). */
export interface Credential {
  accessKeyId: string;
  secretAccessKey: string;
  /** When the set was made (ISO 8601), for xks_proxy_credential_age_days. */
  createdAt?: string | undefined;
}

/**
 * Secondary authorization (spec Z1) on requestMetadata. Every list given must match; an absent list
 * allows anything. Patterns are globs where `*` matches any run of characters.
 */
export interface PolicyConfig {
  principals?: string[] | undefined;
  operations?: string[] | undefined;
  viaServices?: string[] | undefined;
  /** With viaServices: also refuse calls that name no kmsViaService (direct calls). */
  requireViaService: boolean;
  /** The VPC endpoint of the path to this proxy: the NLB's PROXY v2 TLV only. */
  vpcEndpoints?: string[] | undefined;
  /** requestMetadata.awsSourceVpce: the caller's own VPC endpoint to KMS. */
  awsSourceVpces?: string[] | undefined;
}

export interface KeyConfig {
  /** externalKeyId. */
  id: string;
  /** CKA_LABEL of the key on every HSM node. */
  label: string;
  usage: KeyUsage[];
  enabled: boolean;
  policy?: PolicyConfig | undefined;
}

export interface KeyStoreConfig {
  name: string;
  uriPathPrefix: string;
  enabled: boolean;
  credentialsFile: string;
  regions?: string[] | undefined;
  quota?: { requestsPerSecond: number; burst?: number | undefined } | undefined;
  /** Source CIDRs for this store: others get 403 (never GetHealthStatus). */
  allow?: string[] | undefined;
  /** VPC endpoint ids for this store (PROXY v2 TLV or awsSourceVpce). */
  vpcEndpoints?: string[] | undefined;
  policy?: PolicyConfig | undefined;
  keys: KeyConfig[];
}

/** What GetHealthStatus says about the proxy fleet. */
export interface ProxyInfo {
  hostname: string;
  fleetSize: number;
  vendor: string;
  regions: string[];
  /** ciphertextMetadata of new ciphertexts: 2 binds the external key id (xks/aad.ts). */
  ciphertextMetadataVersion: 1 | 2;
}
