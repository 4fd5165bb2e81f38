// The key handle each pooled session uses for a CKA_LABEL. Without copies: the token object, found
// once per session. With copies (SoftHSM2, see SessionKeyCopies): a session object copied from the
// token object inside the HSM, because SoftHSM2 re-checks a token object's file on every use and a
// session object it does not (55 µs against 24 µs for an encrypt plus its verification decrypt).
// A copy must not outlive a change on the token for long: after KEY_COPY_REFRESH_MS the label is
// looked up on the token again and copied afresh, so a deleted key, changed CKA_ENCRYPT/DECRYPT or
// a key replaced under its label is seen within that bound. A module that refuses the copy
// (CKA_COPYABLE false, CKR_ACTION_PROHIBITED, anything) gets the token object for that key.
import { Pkcs11CallError, type Handle, type Pkcs11Module } from './pkcs11.js';
import type { PooledSession } from './session-pool.js';

/** How long a session copy is used before the token is read again. */
export const KEY_COPY_REFRESH_MS = 5000;

export interface KeyHandle {
  /** What the crypto calls use: the session copy, or the token object. */
  use: Handle;
  /** True when `use` is a copy this session made (destroyed when replaced). */
  copy: boolean;
  /** Date.now() from which the label is looked up again; Infinity without copies. */
  until: number;
}

export interface KeyHandleOptions {
  copies: boolean;
  refreshMs?: number | undefined;
  /** Told once per label whose copy the module refused (the token object serves it instead). */
  onRefused(label: string, reason: string): void;
}

export class KeyHandles {
  private readonly refused = new Set<string>();
  private readonly refreshMs: number;

  constructor(
    private readonly mod: Pkcs11Module,
    private readonly opts: KeyHandleOptions,
  ) {
    this.refreshMs = opts.refreshMs ?? KEY_COPY_REFRESH_MS;
  }

  /** The handle for a label in this session, or null when the token holds no such secret key. */
  get(s: PooledSession, label: string): Handle | null {
    const k = s.keys.get(label);
    // The hot path: one Map lookup and one time compare.
    if (k !== undefined && Date.now() < k.until) return k.use;
    return this.lookup(s, label);
  }

  /** The handle turned invalid (CKR_OBJECT_HANDLE_INVALID …): the next get looks the label up again. */
  forget(s: PooledSession, label: string): void {
    const k = s.keys.get(label);
    if (!k) return;
    s.keys.delete(label);
    if (k.copy) this.destroy(s, k.use);
  }

  private lookup(s: PooledSession, label: string): Handle | null {
    // The old copy goes first: it must never be used after its bound, even if the lookup fails.
    this.forget(s, label);
    const token = this.mod.findSecretKey(s.handle, label);
    // Misses are not cached: the key may be imported later.
    if (!token) return null;
    if (!this.opts.copies) {
      s.keys.set(label, { use: token, copy: false, until: Infinity });
      return token;
    }
    let use = token;
    let copy = false;
    try {
      use = this.mod.copyToSession(s.handle, token);
      copy = true;
    } catch (err) {
      if (!this.refused.has(label)) {
        this.refused.add(label);
        this.opts.onRefused(label, err instanceof Pkcs11CallError ? (err.ckr ?? err.message) : String(err));
      }
    }
    // A refused copy is tried again at the next refresh: the key may have been replaced meanwhile.
    s.keys.set(label, { use, copy, until: Date.now() + this.refreshMs });
    return use;
  }

  private destroy(s: PooledSession, copy: Handle): void {
    try {
      this.mod.destroy(s.handle, copy);
    } catch {
      // Already gone with its session: nothing left to free.
    }
  }
}

/** The return values that mean a cached key handle no longer names an object. */
export function isStaleHandle(err: unknown): boolean {
  return err instanceof Pkcs11CallError && (err.ckr === 'CKR_OBJECT_HANDLE_INVALID' || err.ckr === 'CKR_KEY_HANDLE_INVALID');
}
