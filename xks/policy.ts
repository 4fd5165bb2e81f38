// Secondary authorization (spec Z1), after authentication and key lookup; GetHealthStatus is
// never subject to it (H5). Store rules, then key rules; the first rule that does not match
// denies with 403 AccessDeniedException and is named in the log (Z1: "the statement that caused
// the deny").
import type { KeyConfig, PolicyConfig } from './options.js';
import { CidrList } from './cidr-list.js';
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
    super('AccessDeniedException', 'Access denied by the proxy authorization policy', `denied by ${rule}`);
  }
}

/** Glob with `*` only, anchored; compiled once per pattern. */
const globs = new Map<string, RegExp>();
export function globMatch(pattern: string, value: string): boolean {
  let re = globs.get(pattern);
  if (!re) {
    re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 's');
    globs.set(pattern, re);
  }
  return re.test(value);
}

const cidrCache = new WeakMap<readonly string[], CidrList>();
function cidrs(list: readonly string[]): CidrList {
  let c = cidrCache.get(list);
  if (!c) cidrCache.set(list, (c = new CidrList(list)));
  return c;
}

// Two different VPC endpoints, two rules, never mixed:
//  - vpcEndpoints: the endpoint of the path to THIS proxy, from the NLB's PROXY v2 TLV on a
//    connection from a trusted proxy. Only that TLV is evidence; the request body is not.
//  - awsSourceVpces: requestMetadata.awsSourceVpce, the caller's own VPC endpoint to KMS as KMS
//    reports it (signed by KMS's credential, but says nothing about the path to this proxy).
function inList(list: readonly string[], value: string | undefined): boolean {
  return value !== undefined && list.includes(value);
}

function checkRules(policy: PolicyConfig, where: string, input: PolicyInput): void {
  const md = input.metadata;
  if (policy.principals && !policy.principals.some((p) => md.awsPrincipalArn !== undefined && globMatch(p, md.awsPrincipalArn))) {
    throw new AccessDenied(`${where}.principals`);
  }
  if (policy.operations && !policy.operations.includes(md.kmsOperation)) throw new AccessDenied(`${where}.operations`);
  if (policy.viaServices) {
    const via = md.kmsViaService;
    if (via === undefined ? policy.requireViaService : !policy.viaServices.includes(via)) throw new AccessDenied(`${where}.viaServices`);
  }
  if (policy.vpcEndpoints && !inList(policy.vpcEndpoints, input.connectionVpceId)) throw new AccessDenied(`${where}.vpcEndpoints`);
  if (policy.awsSourceVpces && !inList(policy.awsSourceVpces, md.awsSourceVpce)) throw new AccessDenied(`${where}.awsSourceVpces`);
}

/** Throws AccessDenied naming the rule; returns when the request may proceed. */
export function authorize(input: PolicyInput): void {
  const { store, key } = input;
  const where = `keyStores[${store.name}]`;
  const c = store.config;
  if (c.allow && (!input.sourceAddress || !cidrs(c.allow).has(input.sourceAddress))) throw new AccessDenied(`${where}.allow`);
  if (c.vpcEndpoints && !inList(c.vpcEndpoints, input.connectionVpceId)) throw new AccessDenied(`${where}.vpcEndpoints`);
  if (c.policy) checkRules(c.policy, `${where}.policy`, input);
  if (key.policy) checkRules(key.policy, `${where}.keys[${key.id}].policy`, input);
}
