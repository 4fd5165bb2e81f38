// What an audit record holds. Fields are copied one by one from an allow-list, never spread, so
// nothing else (plaintext, ciphertext, AAD, secrets, PINs: spec L2) can ever reach the trail.
import type { RequestRecord } from '../context.js';

/** One request (spec L1): who asked for what with which key, from where, and what came of it.
 *  One object literal in a fixed field order: JSON.stringify leaves out the undefined fields, and
 *  every record has the same shape (no per-field stores on the hot path). */
export function requestEntry(r: RequestRecord): { type: 'request' } & Record<string, unknown> {
  return {
    type: 'request',
    // Set only once SigV4 verified: before that nothing in the body is trusted (or even read).
    authenticated: r.accessKeyId !== undefined,
    kmsRequestId: r.kmsRequestId,
    kmsOperation: r.kmsOperation,
    operation: r.operation,
    keyStore: r.store,
    externalKeyId: r.keyId,
    principal: r.principal,
    kmsKeyArn: r.kmsKeyArn,
    kmsViaService: r.kmsViaService,
    accessKeyId: r.accessKeyId,
    sourceAddress: r.source,
    sourcePort: r.sourcePort,
    vpcEndpointId: r.sourceVpce,
    outcome: r.status === 200 ? 'success' : 'failure',
    status: r.status,
    errorName: r.errorName,
    policyRule: r.policyRule,
    hsmNode: r.node,
    latencyMs: r.latencyMs,
    suppressed: r.suppressed,
  };
}

/** The administrative actions the trail records (others add theirs here). */
export type AdminActionName =
  | 'block'
  | 'unblock'
  | 'creds-add'
  | 'creds-retire'
  | 'reload'
  | 'cert-install'
  | 'kms-config-export'
  | 'drain'
  | 'undrain';

export interface AdminAction {
  action: AdminActionName;
  /** Who did it: the operator's login (CLI), or e.g. "signal:SIGHUP". */
  operator: string;
  /** Why, in the operator's words ("" when none was given). */
  reason?: string | undefined;
  outcome?: 'success' | 'failure';
  /** Facts about the action: key id, store, access key id, certificate fingerprint, ... Never a secret. */
  details?: Record<string, string | number | boolean | undefined>;
}

/** The chain's own fields (chain.ts writes them first): a detail never shadows them. */
const LINK_FIELDS = new Set(['seq', 'prev', 'time']);
const SECRET_NAME = /secret|password|passphrase|^pin$|privatekey|plaintext/i;

export function adminEntry(a: AdminAction): { type: 'admin' } & Record<string, unknown> {
  const e: { type: 'admin' } & Record<string, unknown> = { type: 'admin', action: a.action, operator: a.operator, reason: a.reason ?? '', outcome: a.outcome ?? 'success' };
  for (const [k, v] of Object.entries(a.details ?? {})) {
    // A programming error, not an operator one: refuse loudly rather than keep a secret.
    if (SECRET_NAME.test(k)) throw new Error(`audit: field "${k}" may hold a secret and is never recorded`);
    if (v !== undefined && !(k in e) && !LINK_FIELDS.has(k)) e[k] = v;
  }
  return e;
}
