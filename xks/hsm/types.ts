// The contract between the XKS API layer and the HSM cluster. Nothing here knows about sockets;
// nothing above it knows about PKCS#11. Errors thrown across it are HsmError (errors.ts), named
// as the spec's errors: InvalidCiphertextException (an answer, never retried), DependencyTimeoutException,
// ThrottlingException, InternalException.
import type { HsmOptions } from './options.js';

/** A token data object of the appliance's shared state (e.g. a kill-switch block). */
export interface StateObject {
  label: string;
  value: Buffer;
}

/** What one node answered to a call made on every node. */
export type NodeOutcome<T> = { node: string; ok: true; value: T } | { node: string; ok: false; error: string };

export type NodeHealth = 'ACTIVE' | 'DEGRADED' | 'UNAVAILABLE';

/**
 * What the token says about the key object under a label (CKA_CLASS, CKA_KEY_TYPE, CKA_VALUE_LEN or
 * the modulus/curve, CKA_ENCRYPT, CKA_DECRYPT and the other usage attributes). Every object class is
 * searched: an RSA or EC key under a configured label is reported as what it is, not as missing.
 */
export interface KeyInfo {
  /** 'SECRET_KEY', 'PRIVATE_KEY' or 'PUBLIC_KEY' (CKO_* without the prefix). */
  objectClass: string;
  /** 'AES', 'DES3', 'GENERIC_SECRET', 'RSA', 'EC', … (CKK_* without the prefix). */
  keyType: string;
  /** CKA_VALUE_LEN in bytes (32 for AES-256); 0 when the token does not say (and for RSA/EC). */
  valueLen: number;
  /** The spec's name where it has one (AES_256, RSA_2048, ECC_NIST_P256, HMAC_256), else the type. */
  keySpec: string;
  encrypt: boolean;
  decrypt: boolean;
  /** Other usages the object allows, in the spec's words: SIGN, VERIFY, WRAP, UNWRAP, DERIVE. */
  otherUsage: string[];
}

export interface EncryptInput {
  label: string;
  plaintext: Buffer;
  /** The framed HSM AAD (xks/aad.ts). */
  hsmAad: Buffer;
  /** When present: compute the CDIV over these and the output, then verify by decrypting (spec C3). */
  cdiv?: { aad: Buffer; metadata: Buffer };
}

export interface EncryptOutput {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  cdiv?: Buffer;
  node: string;
}

export interface DecryptInput {
  label: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  hsmAad: Buffer;
}

export interface DecryptOutput {
  plaintext: Buffer;
  node: string;
}

export interface NodeStatus {
  id: string;
  model: string;
  health: NodeHealth;
  /** Why the node is out or DEGRADED, when it is not for its traffic: a refused PIN, keys it lacks. */
  detail?: string | undefined;
  /** The OS process holding this node's PKCS#11 sessions, when running. */
  pid: number | undefined;
  /** When the last background probe finished (Date.now()), if any. */
  lastProbeAt: number | undefined;
  /** Calls sent to this node since start (first attempts and retries, not probes). */
  calls?: number;
  /** Calls in flight on this node right now. */
  inFlight?: number;
  /** The size of its logged-in session pool. */
  sessions?: number;
  /** Times its process was started again after it died or was killed. */
  restarts?: number;
}

/**
 * What the cluster reports as it works, for metrics: every attempt on a node (with its outcome:
 * 'ok' or the failure class), a failover away from a node, a node process restarted.
 */
export type HsmEvent =
  | { kind: 'call'; node: string; op: string; ms: number; outcome: string }
  | { kind: 'failover'; node: string }
  | { kind: 'restart'; node: string };

export type Fault =
  | { kind: 'none' }
  | { kind: 'slow'; ms: number }
  | { kind: 'fail'; ckr: string }
  | { kind: 'freeze' };

/** A reload of the HSM configuration whose new node processes run and passed their first probe. */
export interface HsmReconfiguration {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Swap the node list and settings at once; removed nodes finish their calls, then close. */
  commit(): void;
  /** The reload was refused elsewhere: stop the new node processes. */
  abort(): Promise<void>;
}

// The key consistency check (parent/key-check.ts): one truth on every node.
/** What one node holds under a label, compared with the majority. */
export type KeyVerdict = 'ok' | 'missing' | 'other-material' | 'other-kind' | 'unknown';

export interface NodeKeyView {
  node: string;
  verdict: KeyVerdict;
  info?: KeyInfo | undefined;
  /** Why the node is not 'ok', for logs and status. */
  detail?: string | undefined;
}

/**
 * consistent: every node that answered holds the same key; degraded: a majority does, the others
 * lack it or hold something else; split: no majority; absent: on no node; unchecked: no node answered.
 */
export type KeyState = 'consistent' | 'degraded' | 'split' | 'absent' | 'unchecked';

export interface KeyReport {
  label: string;
  state: KeyState;
  nodes: NodeKeyView[];
  /** Whether the material was compared (an AES key allowing encrypt and decrypt on the nodes). */
  materialChecked: boolean;
  /** One line naming the label and the nodes: empty when consistent. */
  message: string;
}

export interface StartOptions {
  /** false: start although a key is split with no majority (xks keys verify reports it). */
  refuseSplit?: boolean;
}

export interface HsmCluster {
  /**
   * Spawn the node processes; resolves once hsm.minNodesAtStart nodes logged in and the keys were
   * checked. Rejects with a one-line, operator-readable Error when the configuration cannot work
   * (too few nodes: no module, no token, wrong PIN; a key split with no majority).
   */
  start(opts?: StartOptions): Promise<void>;
  /** The labels whose keys are checked on every node; call before start() and after a reload. */
  setKeyLabels(labels: readonly string[]): Promise<void>;
  /** The last consistency check of every configured key, with each node's view. */
  keyReports(): KeyReport[];
  /** `deadline` is an absolute performance.now() time: answer or throw before it. */
  keyInfo(label: string, deadline: number): Promise<(KeyInfo & { node: string }) | null>;
  encrypt(input: EncryptInput, deadline: number): Promise<EncryptOutput>;
  decrypt(input: DecryptInput, deadline: number): Promise<DecryptOutput>;
  /** Current state of every node, from probes and live traffic (cached; never blocks). */
  status(): NodeStatus[];
  /** Called whenever a node's health or pid changes. */
  onChange(listener: (nodes: NodeStatus[]) => void): void;
  /** Start what `next` adds or changes (see HsmReconfiguration); rejects with a one-line reason. */
  reconfigure(next: HsmOptions): Promise<HsmReconfiguration>;
  /** Called for every call attempt, failover and node restart (keep it cheap: it is on the hot path). */
  onEvent(listener: (event: HsmEvent) => void): void;
  /**
   * Shared state on every node's token (CKO_DATA objects of one CKA_APPLICATION), each node under
   * its own deadline; one outcome per node of the current configuration.
   */
  listState(application: string, timeoutMs: number): Promise<NodeOutcome<StateObject[]>[]>;
  putState(application: string, label: string, value: Buffer, timeoutMs: number): Promise<NodeOutcome<true>[]>;
  deleteState(application: string, label: string, timeoutMs: number): Promise<NodeOutcome<number>[]>;
  /** Test and demo fault injection on one node. */
  injectFault(nodeId: string, fault: Fault): Promise<void>;
  close(): Promise<void>;
}
