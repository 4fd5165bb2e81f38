// The kill switch as the XKS layer sees it: is this key, its key store or everything blocked?
export type BlockScope = 'key' | 'store' | 'all';

export interface Block {
  scope: BlockScope;
  /** The key store (scopes key and store). */
  store?: string | undefined;
  /** The externalKeyId (scope key). */
  keyId?: string | undefined;
  reason: string;
  operator: string;
  /** ISO time the block was set. */
  at: string;
}

export interface BlockView {
  /** The block that holds for this store (and key): global first, then store, then key. */
  find(store: string, keyId?: string): Block | undefined;
}

export const NO_BLOCKS: BlockView = { find: () => undefined };
