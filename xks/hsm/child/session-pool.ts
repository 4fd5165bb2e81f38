// The logged-in sessions of one node process. A session serves one call at a time (PKCS#11
// sessions are not safe to share between concurrent calls); each caches its key handles by label
// (key-handles.ts), so a session copy of a key lives and dies with the session that made it.
// Session errors replace that session; repeated device errors finalize and re-initialize the module.
import { Pkcs11CallError, type Handle, type Pkcs11Module, type TokenSelector } from './pkcs11.js';
import type { KeyHandle } from './key-handles.js';

export interface PooledSession {
  handle: Handle;
  /** CKA_LABEL -> key handle; handles are only used in the session (and module) that found them. */
  keys: Map<string, KeyHandle>;
}

/** The caller's deadline passed while waiting for a session: nobody wants the answer any more. */
export class ExpiredError extends Error {
  override name = 'ExpiredError';
}

interface Waiter {
  expiresAt: number;
  resolve: (s: PooledSession) => void;
  reject: (err: Error) => void;
}

/** Consecutive device-class errors before the module is finalized and initialized again. */
const REINIT_AFTER = 3;

export class SessionPool {
  private slot: Handle | undefined;
  private readonly free: PooledSession[] = [];
  /** Sessions that could not be reopened yet; retried on demand. */
  private missing = 0;
  private busy = 0;
  private readonly waiters: Waiter[] = [];
  private deviceErrors = 0;
  private reinitPending = false;

  constructor(
    private readonly mod: Pkcs11Module,
    private readonly selector: TokenSelector,
    private readonly pin: string,
    private readonly size: number,
  ) {}

  /** Initializes the module, finds the token and logs every session in; throws on the first failure. */
  open(): void {
    this.mod.initialize();
    this.slot = this.mod.findSlot(this.selector);
    for (let i = 0; i < this.size; i++) this.free.push(this.newSession());
  }

  close(): void {
    for (const s of this.free.splice(0)) this.mod.closeSession(s.handle);
    this.mod.finalize();
  }

  /** The manufacturerID of the pool's token. */
  tokenManufacturer(): string {
    if (!this.slot) throw new Error('session pool is not open');
    return this.mod.tokenManufacturer(this.slot);
  }

  /**
   * Run `fn` in a read-write session of its own (writing token objects needs one; the pooled
   * sessions are read-only). Rare: opened for the call and closed after it.
   */
  readWrite<T>(fn: (session: Handle) => T): T {
    if (!this.slot) throw new Error('session pool is not open');
    const handle = this.mod.openSession(this.slot, true);
    try {
      this.mod.login(handle, this.pin);
      return fn(handle);
    } finally {
      this.mod.closeSession(handle);
    }
  }

  async use<T>(expiresAt: number, fn: (s: PooledSession) => Promise<T>): Promise<T> {
    let s: PooledSession;
    try {
      s = this.take() ?? (await this.wait(expiresAt));
    } catch (err) {
      // Reopening a lost session failed: that counts towards re-initializing the module too.
      this.note(err);
      if (this.reinitPending && this.busy === 0) this.reinit();
      throw err;
    }
    this.busy++;
    let broken = false;
    try {
      const result = await fn(s);
      this.deviceErrors = 0;
      return result;
    } catch (err) {
      broken = this.note(err);
      throw err;
    } finally {
      this.busy--;
      this.release(s, broken);
    }
  }

  /**
   * Records a failure; true when the session that saw it must be replaced. After an unexpected
   * failure the session may still hold an active operation (not every module ends it), so it goes too.
   */
  private note(err: unknown): boolean {
    if (!(err instanceof Pkcs11CallError)) return false;
    if (err.cls === 'device' && ++this.deviceErrors >= REINIT_AFTER) this.reinitPending = true;
    return err.cls === 'session' || err.cls === 'internal';
  }

  private newSession(): PooledSession {
    if (!this.slot) throw new Error('session pool is not open');
    const handle = this.mod.openSession(this.slot);
    try {
      this.mod.login(handle, this.pin);
    } catch (err) {
      this.mod.closeSession(handle);
      throw err;
    }
    return { handle, keys: new Map() };
  }

  private take(): PooledSession | undefined {
    if (this.reinitPending) return undefined;
    const s = this.free.pop();
    if (s || this.missing === 0) return s;
    // A session lost earlier: reopening may fail again, and then this call fails with that error.
    const fresh = this.newSession();
    this.missing--;
    return fresh;
  }

  private wait(expiresAt: number): Promise<PooledSession> {
    return new Promise((resolve, reject) => this.waiters.push({ expiresAt, resolve, reject }));
  }

  private release(s: PooledSession, broken: boolean): void {
    let back: PooledSession | undefined = s;
    if (broken) {
      this.mod.closeSession(s.handle);
      back = this.tryNewSession();
    }
    if (back) this.free.push(back);
    if (this.reinitPending && this.busy === 0) this.reinit();
    this.serveWaiters();
  }

  private tryNewSession(): PooledSession | undefined {
    try {
      return this.newSession();
    } catch {
      this.missing++;
      return undefined;
    }
  }

  /** C_Finalize + C_Initialize, then a fresh set of sessions: what a wedged module needs. */
  private reinit(): void {
    this.reinitPending = false;
    this.deviceErrors = 0;
    this.free.length = 0;
    this.missing = this.size;
    this.mod.finalize();
    try {
      this.mod.initialize();
      // A token may sit in another slot after re-initialization.
      this.slot = this.mod.findSlot(this.selector);
    } catch {
      // Still broken: every call fails with the module's error and the prober marks the node down.
      return;
    }
    for (let i = 0; i < this.size; i++) {
      const s = this.tryNewSession();
      if (s) {
        this.free.push(s);
        this.missing--;
      }
    }
  }

  private serveWaiters(): void {
    const now = Date.now();
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (w.expiresAt < now) {
        this.waiters.shift();
        w.reject(new ExpiredError('expired waiting for a session'));
        continue;
      }
      let s: PooledSession | undefined;
      try {
        s = this.take();
      } catch (err) {
        this.waiters.shift();
        w.reject(err as Error);
        continue;
      }
      if (!s) return;
      this.waiters.shift();
      w.resolve(s);
    }
  }
}
