// What the HSM cluster takes: declared here, by the layer that uses it; appliance/ maps the validated
// configuration onto it. Shared by both sides of the process boundary: the parent spawns one node
// process per HsmNodeOptions and hands it the same object over IPC.

/** caller: the proxy draws the 12-byte IV (SoftHSM2, Luna); hsm: the module writes its own IV back. */
export type IvMode = 'caller' | 'hsm';
/** sync: fast local modules; async: network HSMs, calls run on libuv's thread pool. */
export type CallMode = 'sync' | 'async';

/**
 * Crypto calls on an in-HSM session copy of each token key (C_CopyObject, CKA_TOKEN false) instead
 * of the token object: SoftHSM2 re-reads a token object's file on every use, a session object it
 * does not. 'auto': on when the token's manufacturerID is "SoftHSM project", off for every other.
 */
export type SessionKeyCopies = 'auto' | boolean;

/** Where a node process reads its PIN: exactly one of a file (mode 0600) or an environment variable. */
export interface PinSource {
  file?: string | undefined;
  env?: string | undefined;
}

export interface HsmNodeOptions {
  id: string;
  model: string;
  /** The vendor PKCS#11 library. */
  module: string;
  /** The token by label, or else by slot index. */
  tokenLabel?: string | undefined;
  slot?: number | undefined;
  pin: PinSource;
  ivMode: IvMode;
  /** Logged-in sessions the node process keeps open. */
  sessions: number;
  callMode: CallMode;
  /** Default 'auto'. */
  sessionKeyCopies?: SessionKeyCopies | undefined;
  /** Extra environment for the node process (e.g. SOFTHSM2_CONF). */
  env: Record<string, string>;
}

export interface HsmOptions {
  /** ekmVendor in GetHealthStatus. */
  vendor: string;
  /** Deadline of one call to one node. */
  callTimeoutMs: number;
  /** Deadline of one request across retries, well under KMS's 250 ms. */
  requestBudgetMs: number;
  probeIntervalMs: number;
  /** A node process that answers nothing for this long is killed and restarted. */
  hangKillAfterMs: number;
  /**
   * Nodes that must log in for start() to succeed (default 1); the others are retried with
   * back-off in the background, except a node whose PIN was refused (retrying could lock it).
   */
  minNodesAtStart?: number;
  /** CKA_LABEL of the AES-256 key the probes use on every node. */
  healthKeyLabel: string;
  nodes: readonly HsmNodeOptions[];
}
