// IPC between the cluster (parent) and one HSM node process (child). Two channels: Node's IPC
// channel (`serialization: 'advanced'`) carries the cold messages as objects (init, ready, fatal)
// and the disconnect that ends the child; calls and replies cross a plain pipe (CALL_PIPE_FD) as
// wire.ts frames. PINs never cross either: the child reads its PIN from the file or environment
// variable the node configuration names.
import type { HsmNodeOptions } from './options.js';
import type { DecryptInput, EncryptInput, Fault, KeyInfo, StateObject } from './types.js';

/**
 * The child's descriptor of the call pipe: stdio 0-2, then 3, the IPC channel (opening it again
 * fails with EEXIST).
 */
export const CALL_PIPE_FD = 4;

export interface InitMessage {
  t: 'init';
  node: HsmNodeOptions;
  healthKeyLabel: string;
}

export type NodeCall =
  | { op: 'keyInfo'; label: string }
  | { op: 'encrypt'; input: EncryptInput }
  | { op: 'decrypt'; input: DecryptInput }
  | { op: 'probe' }
  | { op: 'fault'; fault: Fault }
  // Shared state as token data objects (child/state-objects.ts).
  | { op: 'stateList'; application: string }
  | { op: 'statePut'; application: string; label: string; value: Buffer }
  | { op: 'stateDelete'; application: string; label: string };

export type OpName = NodeCall['op'];

export interface OpResults {
  keyInfo: KeyInfo | null;
  encrypt: { iv: Buffer; ciphertext: Buffer; tag: Buffer; cdiv?: Buffer };
  decrypt: { plaintext: Buffer };
  probe: true;
  fault: true;
  stateList: StateObject[];
  statePut: true;
  stateDelete: number;
}

export interface CallRequest {
  t: 'req';
  id: number;
  /** Date.now() after which the parent has given up: the child skips the work. */
  expiresAt: number;
  call: NodeCall;
}

/** What a failed PKCS#11 call means (the catalog is child/ckr.ts). */
export type FailureClass =
  /** The session or login is gone: drop the session, open a new one, log in again. */
  | 'session'
  /** The module or device is unwell; repeated, it is finalized and initialized again. */
  | 'device'
  /** GCM tag mismatch or malformed ciphertext: an answer, never retried. */
  | 'invalid-ciphertext'
  /** The key does not allow the operation: an answer, never retried. */
  | 'key-usage'
  /** PIN incorrect, locked or expired: only a human can fix it. */
  | 'login'
  | 'internal';

/**
 * Why a call failed, as the cluster sees it: the PKCS#11 classes, plus 'key-missing' (no key with
 * that label on this node).
 */
export type WireErrorClass = FailureClass | 'key-missing';

export interface WireError {
  cls: WireErrorClass;
  ckr?: string | undefined;
  /** For our own log only: never sent to KMS. */
  message: string;
}

export type CallReply = { t: 'res'; id: number; ok: true; value: unknown } | { t: 'res'; id: number; ok: false; error: WireError };

/** The child's own messages on the IPC channel; replies go as wire.ts frames on the call pipe. */
export type ChildMessage = { t: 'ready' } | { t: 'fatal'; message: string; kind: 'pin' | 'config' };

/**
 * A node process's one-off warnings (e.g. a key copy its module refused) reach the cluster's log as
 * stderr lines starting with this; other stderr (vendor libraries print there) is not logged.
 */
export const NODE_NOTICE = 'xks-node-notice: ';
