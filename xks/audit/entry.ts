// What an audit record holds. Fields are copied one by one from an allow-list, never spread, so
// nothing else (plaintext, ciphertext, AAD, secrets, PINs: spec L2) can ever reach the trail.
import type { RequestRecord } from '../context.js';

/** One request (spec L1): who asked for what with which key, from where, and what came of it. */
export function requestEntry(r: RequestRecord): { type: 'request' } & Record<string, unknown> {
  const e: { type: 'request' } & Record<string, unknown> = { type: 'request' };
  // Set only once SigV4 verified: before that nothing in the body is trusted (or even read).
  e['authenticated'] = r.accessKeyId !== undefined;
  put(e, 'kmsRequestId', r.kmsRequestId);
  put(e, 'kmsOperation', r.kmsOperation);
  put(e, 'operation', r.operation);
  put(e, 'keyStore', r.store);
  put(e, 'externalKeyId', r.keyId);
  put(e, 'principal', r.principal);
  put(e, 'kmsKeyArn', r.kmsKeyArn);
  put(e, 'kmsViaService', r.kmsViaService);
  put(e, 'accessKeyId', r.accessKeyId);
  put(e, 'sourceAddress', r.source);
  put(e, 'sourcePort', r.sourcePort);
  put(e, 'vpcEndpointId', r.sourceVpce);
  e['outcome'] = r.status === 200 ? 'success' : 'failure';
  put(e, 'status', r.status);
  put(e, 'errorName', r.errorName);
  put(e, 'policyRule', r.policyRule);
  put(e, 'hsmNode', r.node);
  put(e, 'latencyMs', r.latencyMs);
  put(e, 'suppressed', r.suppressed);
  return e;
}

function put(e: Record<string, unknown>, k: string, v: string | number | undefined): void {
  if (v !== undefined) e[k] = v;
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

const SECRET_NAME = /secret|password|passphrase|^pin$|privatekey|plaintext/i;

export function adminEntry(a: AdminAction): { type: 'admin' } & Record<string, unknown> {
  const e: { type: 'admin' } & Record<string, unknown> = { type: 'admin', action: a.action, operator: a.operator, reason: a.reason ?? '', outcome: a.outcome ?? 'success' };
  for (const [k, v] of Object.entries(a.details ?? {})) {
    // A programming error, not an operator one: refuse loudly rather than keep a secret.
    if (SECRET_NAME.test(k)) throw new Error(`audit: field "${k}" may hold a secret and is never recorded`);
    if (v !== undefined && !(k in e)) e[k] = v;
  }
  return e;
}
