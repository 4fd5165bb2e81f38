// What one XKS request carries through the xks/ layer, and the record it leaves behind for the
// log, the audit trail and the metrics (one per request, keyed by kmsRequestId).
import type { ProxyInfo } from './options.js';
import type { HsmOptions } from './hsm/options.js';
import type { HsmCluster } from './hsm/types.js';
import type { KeyDirectory } from './keys.js';
import type { KeyStore } from './keystore.js';
import type { BlockView } from './blocks.js';
import type { Operation } from './validate.js';

export interface RequestRecord {
  kmsRequestId?: string;
  kmsOperation?: string;
  store?: string;
  operation?: Operation | 'health-check';
  keyId?: string;
  principal?: string;
  kmsKeyArn?: string;
  kmsViaService?: string;
  sourceVpce?: string;
  /** The client: the TCP peer, or the source a trusted PROXY header names. */
  source?: string;
  sourcePort?: number;
  accessKeyId?: string;
  node?: string;
  status?: number;
  errorName?: string;
  /** For our log only: why an error happened (never secrets or plaintext). */
  detail?: string;
  policyRule?: string;
  latencyMs?: number;
  /** A summary record: this many more like it (unauthenticated, same source and status) were
   *  not written one by one in the last interval. */
  suppressed?: number;
}

/** A record with every field present from the start: all records share one shape, so the code
 *  that fills and reads them (audit, metrics, log) stays monomorphic. Undefined fields are left
 *  out of every JSON rendering. */
export function newRequestRecord(): RequestRecord {
  // Every field named (the type says so): a field added to RequestRecord must be added here too.
  const record: { [K in keyof Required<RequestRecord>]: RequestRecord[K] } = {
    kmsRequestId: undefined,
    kmsOperation: undefined,
    store: undefined,
    operation: undefined,
    keyId: undefined,
    principal: undefined,
    kmsKeyArn: undefined,
    kmsViaService: undefined,
    sourceVpce: undefined,
    source: undefined,
    sourcePort: undefined,
    accessKeyId: undefined,
    node: undefined,
    status: undefined,
    errorName: undefined,
    detail: undefined,
    policyRule: undefined,
    latencyMs: undefined,
    suppressed: undefined,
  };
  return record;
}

export interface XksRequest {
  store: KeyStore;
  operation: Operation;
  keyId: string | undefined;
  body: Record<string, unknown>;
  /** performance.now() time by which the answer must be ready. */
  deadline: number;
  sourceAddress: string | undefined;
  connectionVpceId: string | undefined;
  record: RequestRecord;
}

export interface XksDeps {
  hsm: HsmCluster;
  keys: KeyDirectory;
  blocks: BlockView;
  proxy: ProxyInfo;
  hsmConfig: HsmOptions;
}
