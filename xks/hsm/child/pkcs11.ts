// A typed wrapper over pkcs11js for what the appliance needs: one module, token slots, logged-in
// sessions, AES keys found by CKA_LABEL, and AES-GCM in one part. Every CKR_* failure becomes a
// Pkcs11CallError whose `cls` (from the catalog in ckr.ts) tells the caller what to do about it.
import pkcs11js from 'pkcs11js';
import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import type { CallMode, IvMode } from '../options.js';
import type { KeyInfo } from '../types.js';
import type { FailureClass } from '../protocol.js';
import { ckrName, classify, type Operation } from './ckr.js';
import { describeKey } from './key-object.js';

export type Handle = Buffer;
export type { CallMode, IvMode } from '../options.js';

/** A failed PKCS#11 call. `ckr` is undefined when the failure did not come from the module. */
export class Pkcs11CallError extends Error {
  constructor(
    readonly cls: FailureClass,
    readonly fn: string,
    readonly ckr: string | undefined,
    message = `${fn}: ${ckr}`,
  ) {
    super(message);
    this.name = 'Pkcs11CallError';
  }

  static fromCkr(ckr: string, fn: string, op: Operation): Pkcs11CallError {
    return new Pkcs11CallError(classify(ckr, op), fn, ckr);
  }
}

/** Turns whatever pkcs11js threw into a Pkcs11CallError (non-CKR failures are 'internal'). */
function wrap(err: unknown, fn: string, op: Operation): Pkcs11CallError {
  if (err instanceof Pkcs11CallError) return err;
  if (err instanceof pkcs11js.Pkcs11Error) return Pkcs11CallError.fromCkr(ckrName(err.code), fn, op);
  // A few pkcs11js methods (C_CopyObject) throw the native error as it is: "CKR_<name>:<code>".
  const native = err instanceof Error ? /^CKR_[A-Z_]+:(\d+)$/.exec(err.message) : null;
  if (native) return Pkcs11CallError.fromCkr(ckrName(Number(native[1])), fn, op);
  return internal(fn, err instanceof Error ? err.message : String(err));
}

/** Runs one PKCS#11 call; any failure becomes a Pkcs11CallError. */
export function call<T>(fn: string, op: Operation, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw wrap(err, fn, op);
  }
}

async function callAsync<T>(fn: string, op: Operation, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw wrap(err, fn, op);
  }
}

/** CK_ULONG attribute values arrive as native-endian bytes. */
function readUlong(buf: Buffer | undefined): number {
  if (!buf || buf.length === 0) return 0;
  const le = endianness() === 'LE';
  if (buf.length === 8) return Number(le ? buf.readBigUInt64LE() : buf.readBigUInt64BE());
  if (buf.length === 4) return le ? buf.readUInt32LE() : buf.readUInt32BE();
  return buf[0] ?? 0;
}

function readBool(buf: Buffer | undefined): boolean {
  return !!buf && buf.length > 0 && buf[0] !== 0;
}

export interface TokenSelector {
  tokenLabel?: string | undefined;
  slot?: number | undefined;
}

export class TokenNotFoundError extends Error {
  constructor(
    message: string,
    readonly labels: string[],
  ) {
    super(message);
    this.name = 'TokenNotFoundError';
  }
}

export interface GcmResult {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

const TAG_BYTES = 16;
const IV_BYTES = 12;

/** Thrown when ivMode is 'hsm' and the module left the zero IV unchanged: never return a zero IV. */
export class IvNotReturnedError extends Error {
  constructor() {
    super('the module did not write an IV back (ivMode "hsm" needs a module that generates the IV)');
    this.name = 'IvNotReturnedError';
  }
}

export class Pkcs11Module {
  protected readonly lib: pkcs11js.PKCS11;

  /** Loads the shared library; throws a plain Error when the file cannot be loaded. */
  constructor(readonly path: string) {
    this.lib = new pkcs11js.PKCS11();
    this.lib.load(path);
  }

  /** CKF_OS_LOCKING_OK is mandatory: without it SoftHSM2 corrupts its heap under concurrent async calls. */
  initialize(): void {
    try {
      this.lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      const e = wrap(err, 'C_Initialize', 'other');
      if (e.ckr !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e;
    }
  }

  /** Invalidates every session and handle of this module. */
  finalize(): void {
    try {
      this.lib.C_Finalize();
    } catch {
      // Already finalized or the device is gone: either way there is nothing left to release.
    }
  }

  findSlot(sel: TokenSelector): Handle {
    const slots = call('C_GetSlotList', 'other', () => this.lib.C_GetSlotList(true));
    if (sel.tokenLabel === undefined) {
      const slot = slots[sel.slot ?? 0];
      if (!slot) throw new TokenNotFoundError(`there is no slot with index ${sel.slot ?? 0} (the module has ${slots.length} slots with a token)`, []);
      return slot;
    }
    const labels: string[] = [];
    for (const slot of slots) {
      const info = call('C_GetTokenInfo', 'other', () => this.lib.C_GetTokenInfo(slot));
      // Token labels are blank-padded to 32 bytes; an uninitialized token has an empty label.
      const label = info.label.trimEnd();
      if (label === sel.tokenLabel) return slot;
      if (label) labels.push(label);
    }
    throw new TokenNotFoundError(`no token labelled "${sel.tokenLabel}"`, labels);
  }

  openSession(slot: Handle, readWrite = false): Handle {
    const flags = pkcs11js.CKF_SERIAL_SESSION | (readWrite ? pkcs11js.CKF_RW_SESSION : 0);
    return call('C_OpenSession', 'other', () => this.lib.C_OpenSession(slot, flags));
  }

  closeSession(session: Handle): void {
    try {
      this.lib.C_CloseSession(session);
    } catch {
      // The session is dead already, which is why it is being closed.
    }
  }

  /** Login state is per token and application: CKR_USER_ALREADY_LOGGED_IN is success. */
  login(session: Handle, pin: string, userType: number = pkcs11js.CKU_USER): void {
    try {
      this.lib.C_Login(session, userType, pin);
    } catch (err) {
      const e = wrap(err, 'C_Login', 'other');
      if (e.ckr !== 'CKR_USER_ALREADY_LOGGED_IN') throw e;
    }
  }

  logout(session: Handle): void {
    call('C_Logout', 'other', () => this.lib.C_Logout(session));
  }

  /** The token's manufacturerID (blank padding removed), e.g. "SoftHSM project". */
  tokenManufacturer(slot: Handle): string {
    return call('C_GetTokenInfo', 'other', () => this.lib.C_GetTokenInfo(slot)).manufacturerID.trimEnd();
  }

  /**
   * Finds the secret key token object with this CKA_LABEL; null when absent. Two matches are a
   * configuration error. Session objects (our own key copies share the label) are never matched.
   */
  findSecretKey(session: Handle, label: string): Handle | null {
    const found = this.findObjects(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
    ], 2);
    if (found.length > 1) throw internal('C_FindObjects', `more than one secret key is labelled "${label}"`);
    return found[0] ?? null;
  }

  /** Up to `max` objects matching the template. */
  findObjects(session: Handle, template: pkcs11js.Template, max: number): Handle[] {
    call('C_FindObjectsInit', 'other', () => this.lib.C_FindObjectsInit(session, template));
    try {
      return call('C_FindObjects', 'other', () => this.lib.C_FindObjects(session, max));
    } finally {
      // Always: SoftHSM2 answers CKR_OPERATION_ACTIVE to the next search otherwise.
      call('C_FindObjectsFinal', 'other', () => this.lib.C_FindObjectsFinal(session));
    }
  }

  /**
   * A session object copied from `object` inside the HSM (C_CopyObject with CKA_TOKEN false): it
   * keeps CKA_SENSITIVE, CKA_EXTRACTABLE and the usage flags, and vanishes with the session.
   */
  copyToSession(session: Handle, object: Handle): Handle {
    return call('C_CopyObject', 'other', () => this.lib.C_CopyObject(session, object, [{ type: pkcs11js.CKA_TOKEN, value: false }]));
  }

  destroy(session: Handle, object: Handle): void {
    call('C_DestroyObject', 'other', () => this.lib.C_DestroyObject(session, object));
  }

  /** One attribute's raw value; undefined when the object has no such attribute. */
  attribute(session: Handle, object: Handle, type: number): Buffer | undefined {
    try {
      const [attr] = this.lib.C_GetAttributeValue(session, object, [{ type }]);
      return attr?.value as Buffer | undefined;
    } catch (err) {
      const e = wrap(err, 'C_GetAttributeValue', 'other');
      if (e.ckr === 'CKR_ATTRIBUTE_TYPE_INVALID' || e.ckr === 'CKR_ATTRIBUTE_SENSITIVE') return undefined;
      throw e;
    }
  }

  ulong(session: Handle, object: Handle, type: number): number {
    return readUlong(this.attribute(session, object, type));
  }

  bool(session: Handle, object: Handle, type: number): boolean {
    return readBool(this.attribute(session, object, type));
  }

  /** What the token says about one key object (see KeyInfo): every class, truthfully. */
  keyInfo(session: Handle, key: Handle): KeyInfo {
    return describeKey(this, session, key);
  }

  /**
   * AES-GCM encrypt in one part. ivMode 'caller' draws 12 random bytes; 'hsm' passes 12 zero bytes
   * that the module overwrites (pkcs11js hands the Buffer's own memory to the module as pIv, it
   * does not copy it), and refuses the result if the IV is still all zeros.
   */
  async encrypt(session: Handle, key: Handle, plaintext: Buffer, aad: Buffer, ivMode: IvMode, mode: CallMode): Promise<GcmResult> {
    const iv = ivMode === 'caller' ? randomIv() : Buffer.alloc(IV_BYTES);
    call('C_EncryptInit', 'encrypt', () => this.lib.C_EncryptInit(session, gcm(iv, aad), key));
    const out = Buffer.allocUnsafe(plaintext.length + TAG_BYTES);
    const input = nonNull(plaintext);
    const result =
      mode === 'sync'
        ? call('C_Encrypt', 'encrypt', () => this.lib.C_Encrypt(session, input, out))
        : await callAsync('C_Encrypt', 'encrypt', () => this.lib.C_EncryptAsync(session, input, out));
    // The native worker holds raw pointers only: keep the input alive until the call returned.
    keepAlive(input, aad);
    if (result.length !== plaintext.length + TAG_BYTES) {
      throw internal('C_Encrypt', `output is ${result.length} bytes, expected ciphertext||tag of ${plaintext.length + TAG_BYTES}`);
    }
    if (ivMode === 'hsm' && iv.every((b) => b === 0)) throw new IvNotReturnedError();
    const n = plaintext.length;
    return { iv, ciphertext: result.subarray(0, n), tag: result.subarray(n) };
  }

  /** AES-GCM decrypt in one part; a tag mismatch throws with cls 'invalid-ciphertext'. */
  async decrypt(session: Handle, key: Handle, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer, mode: CallMode): Promise<Buffer> {
    call('C_DecryptInit', 'decrypt', () => this.lib.C_DecryptInit(session, gcm(iv, aad), key));
    const input = Buffer.concat([ciphertext, tag]);
    // Some modules want room for the whole input before they know the tag verifies.
    const out = Buffer.allocUnsafe(input.length);
    const result =
      mode === 'sync'
        ? call('C_Decrypt', 'decrypt', () => this.lib.C_Decrypt(session, input, out))
        : await callAsync('C_Decrypt', 'decrypt', () => this.lib.C_DecryptAsync(session, input, out));
    keepAlive(input, iv, aad);
    if (result.length !== ciphertext.length) {
      throw internal('C_Decrypt', `output is ${result.length} bytes, expected ${ciphertext.length}`);
    }
    return result;
  }
}

// IVs are drawn from the CSPRNG a page at a time (one call per ~340 encrypts instead of one per
// encrypt); each IV is its own never-reused slice of a page, so no two encrypts share IV memory.
const IV_PAGE = 4096 - (4096 % IV_BYTES);
let ivPage = Buffer.alloc(0);
let ivAt = 0;
function randomIv(): Buffer {
  if (ivAt + IV_BYTES > ivPage.length) {
    ivPage = randomBytes(IV_PAGE);
    ivAt = 0;
  }
  return ivPage.subarray(ivAt, (ivAt += IV_BYTES));
}

function gcm(iv: Buffer, aad: Buffer): pkcs11js.Mechanism {
  // CK_PARAMS_GCM fills ulIvBits; pkcs11js's CK_PARAMS_AES_GCM leaves it uninitialized.
  const parameter: pkcs11js.GcmParams = { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits: TAG_BYTES * 8 };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

function internal(fn: string, message: string): Pkcs11CallError {
  return new Pkcs11CallError('internal', fn, undefined, `${fn}: ${message}`);
}

// pkcs11js passes a NULL pointer for an empty Buffer of its own, which modules refuse with
// CKR_ARGUMENTS_BAD (leaving the operation active); an empty view into real memory is not NULL.
const EMPTY = Buffer.alloc(1).subarray(0, 0);

function nonNull(buf: Buffer): Buffer {
  return buf.length === 0 ? EMPTY : buf;
}

function keepAlive(...bufs: Buffer[]): void {
  void bufs;
}
