// What one node process does with its PKCS#11 module: open it (every failure an operator can fix
// becomes a FatalInitError saying how), then serve keyInfo / encrypt / decrypt / probe calls.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { HsmNodeOptions } from '../options.js';
import { computeCdiv } from './cdiv.js';
import { findKeyObject } from './key-object.js';
import { ckrCode } from './ckr.js';
import { IvNotReturnedError, Pkcs11CallError, TokenNotFoundError, type Handle } from './pkcs11.js';
import { Pkcs11StateModule } from './state-objects.js';
import { PinError, readPin } from './pin.js';
import { NODE_NOTICE, type NodeCall, type OpResults } from '../protocol.js';
import { SessionPool, type PooledSession } from './session-pool.js';
import { KeyHandles, isStaleHandle } from './key-handles.js';
import type { DecryptInput, EncryptInput, Fault, KeyInfo } from '../types.js';

/** A configuration problem: the message says what is wrong and how to fix it (no node prefix). */
export class FatalInitError extends Error {
  override name = 'FatalInitError';
  constructor(
    message: string,
    /** 'pin': the PIN is wrong, locked, expired or unreadable; never retried by the service. */
    readonly kind: 'pin' | 'config' = 'config',
  ) {
    super(message);
  }
}

/** No secret key with this label on this node's token. */
export class KeyMissingError extends Error {
  override name = 'KeyMissingError';
}

const PROBE_AAD = Buffer.from('xks-health-probe');

/** What 'auto' session key copies look for in C_GetTokenInfo. */
const SOFTHSM_MANUFACTURER = 'SoftHSM project';

export interface NodeServiceTuning {
  /** Bound on a session key copy's age (default KEY_COPY_REFRESH_MS); tests shorten it. */
  keyRefreshMs?: number;
  /** One-off warnings for the cluster's log (default: a NODE_NOTICE line on stderr). */
  notice?: (message: string) => void;
}

export class NodeService {
  private fault: Fault = { kind: 'none' };

  private constructor(
    private readonly cfg: HsmNodeOptions,
    private readonly mod: Pkcs11StateModule,
    private readonly pool: SessionPool,
    private readonly keys: KeyHandles,
    private readonly healthKeyLabel: string,
  ) {}

  /** Loads the module, logs in every session, checks the health key and runs one probe. */
  static async open(cfg: HsmNodeOptions, healthKeyLabel: string, tuning: NodeServiceTuning = {}): Promise<NodeService> {
    let pin: string;
    try {
      pin = readPin(cfg.pin);
    } catch (err) {
      throw err instanceof PinError ? new FatalInitError(err.message, 'pin') : err;
    }
    const mod = loadModule(cfg.module);
    const pool = new SessionPool(mod, { tokenLabel: cfg.tokenLabel, slot: cfg.slot }, pin, cfg.sessions);
    try {
      pool.open();
    } catch (err) {
      mod.finalize();
      throw explainOpenFailure(cfg, err);
    }
    let service: NodeService;
    try {
      const copies = cfg.sessionKeyCopies === undefined || cfg.sessionKeyCopies === 'auto' ? pool.tokenManufacturer() === SOFTHSM_MANUFACTURER : cfg.sessionKeyCopies;
      const notice = tuning.notice ?? ((message: string) => process.stderr.write(`${NODE_NOTICE}${message.replace(/\s+/g, ' ')}\n`));
      const onRefused = (label: string, reason: string) =>
        notice(`the module refused a session copy of key "${label}" (${reason}); that key is served from its token object (sessionKeyCopies)`);
      service = new NodeService(cfg, mod, pool, new KeyHandles(mod, { copies, refreshMs: tuning.keyRefreshMs, onRefused }), healthKeyLabel);
    } catch (err) {
      pool.close();
      throw explainOpenFailure(cfg, err);
    }
    try {
      await service.checkHealthKey();
      await service.probe(Date.now() + 60_000);
    } catch (err) {
      service.close();
      if (err instanceof FatalInitError) throw err;
      if (err instanceof IvNotReturnedError) {
        throw new FatalInitError('ivMode is "hsm" but the module left the zero IV unchanged, so it does not generate IVs; set ivMode: caller for this node');
      }
      throw new FatalInitError(`the health-check encrypt/decrypt on "${healthKeyLabel}" failed (${describe(err)}); check the key and the module's logs`);
    }
    return service;
  }

  close(): void {
    this.pool.close();
  }

  setFault(fault: Fault): void {
    if (fault.kind === 'fail' && ckrCode(fault.ckr) === undefined) throw new Error(`unknown return value ${fault.ckr}`);
    this.fault = fault;
  }

  get currentFault(): Fault {
    return this.fault;
  }

  async run(call: NodeCall, expiresAt: number): Promise<OpResults[NodeCall['op']]> {
    if (call.op === 'fault') {
      this.setFault(call.fault);
      return true;
    }
    if (this.fault.kind === 'slow') await sleep(this.fault.ms);
    switch (call.op) {
      case 'keyInfo':
        return this.keyInfo(call.label, expiresAt);
      case 'encrypt':
        return this.encrypt(call.input, expiresAt);
      case 'decrypt':
        return { plaintext: await this.decrypt(call.input, expiresAt) };
      case 'probe':
        return this.probe(expiresAt);
      case 'stateList':
        return this.session(expiresAt, 'other', async (s) => this.mod.listState(s.handle, call.application));
      case 'statePut':
        return this.pool.readWrite((h) => (this.mod.putState(h, call.application, call.label, call.value), true as const));
      case 'stateDelete':
        return this.pool.readWrite((h) => this.mod.deleteState(h, call.application, call.label));
    }
  }

  private keyInfo(label: string, expiresAt: number): Promise<KeyInfo | null> {
    return this.session(expiresAt, 'other', async (s) => {
      const key = findKeyObject(this.mod, s.handle, label);
      return key ? this.mod.keyInfo(s.handle, key) : null;
    });
  }

  /** Spec C3: compute the CDIV over the exact output first, then verify it by decrypting that output. */
  private encrypt(input: EncryptInput, expiresAt: number): Promise<OpResults['encrypt']> {
    const { ivMode, callMode } = this.cfg;
    return this.session(expiresAt, 'encrypt', (s) =>
      this.withKey(s, input.label, async (key) => {
        const out = await this.mod.encrypt(s.handle, key, input.plaintext, input.hsmAad, ivMode, callMode);
        if (!input.cdiv) return out;
        const cdiv = computeCdiv(input.cdiv.aad, input.cdiv.metadata, out.iv, out.ciphertext, out.tag);
        let back: Buffer;
        try {
          back = await this.mod.decrypt(s.handle, key, out.iv, out.ciphertext, out.tag, input.hsmAad, callMode);
        } catch (err) {
          // A tag failure here is the HSM's fault, not the caller's: let the cluster try elsewhere.
          if (err instanceof Pkcs11CallError && err.cls === 'invalid-ciphertext') {
            throw new Pkcs11CallError('internal', 'verify', err.ckr, `the verification decrypt failed (${err.ckr})`);
          }
          throw err;
        }
        if (!back.equals(input.plaintext)) throw new Pkcs11CallError('internal', 'verify', undefined, 'the verification decrypt did not return the plaintext');
        return { ...out, cdiv };
      }),
    );
  }

  private decrypt(input: DecryptInput, expiresAt: number): Promise<Buffer> {
    return this.session(expiresAt, 'decrypt', (s) =>
      this.withKey(s, input.label, (key) => this.mod.decrypt(s.handle, key, input.iv, input.ciphertext, input.tag, input.hsmAad, this.cfg.callMode)),
    );
  }

  /**
   * Runs `fn` with the session's handle for `label`. A handle that turned invalid (the key was
   * replaced, its session copy is gone) is looked up again once, in the same session, instead of
   * failing the call.
   */
  private async withKey<T>(s: PooledSession, label: string, fn: (key: Handle) => Promise<T>): Promise<T> {
    for (let retried = false; ; retried = true) {
      try {
        return await fn(this.keyFor(s, label));
      } catch (err) {
        if (retried || !isStaleHandle(err)) throw err;
        this.keys.forget(s, label);
      }
    }
  }

  /** A full round trip on the health key: what GetHealthStatus and the cluster's prober rely on. */
  async probe(expiresAt: number): Promise<true> {
    const plaintext = randomBytes(32);
    const out = await this.encrypt({ label: this.healthKeyLabel, plaintext, hsmAad: PROBE_AAD }, expiresAt);
    const back = await this.decrypt({ label: this.healthKeyLabel, hsmAad: PROBE_AAD, ...out }, expiresAt);
    if (!back.equals(plaintext)) throw new Pkcs11CallError('internal', 'probe', undefined, 'the probe decrypt did not return the plaintext');
    return true;
  }

  private async checkHealthKey(): Promise<void> {
    const info = await this.keyInfo(this.healthKeyLabel, Date.now() + 60_000);
    const where = this.cfg.tokenLabel ? `token "${this.cfg.tokenLabel}"` : `slot ${this.cfg.slot}`;
    const fix = 'import an AES-256 key with that CKA_LABEL allowing encrypt and decrypt (hsm.healthKeyLabel)';
    if (!info) throw new FatalInitError(`the health-check key "${this.healthKeyLabel}" is not on ${where}; ${fix}`);
    const wrong = [
      info.objectClass !== 'SECRET_KEY' && `it is a ${info.objectClass} (CKA_CLASS), not a SECRET_KEY`,
      info.keyType !== 'AES' && `CKA_KEY_TYPE is ${info.keyType}, not AES`,
      info.keyType === 'AES' && info.valueLen !== 32 && `CKA_VALUE_LEN is ${info.valueLen}, not 32 (a key cut short on import?)`,
      !info.encrypt && 'CKA_ENCRYPT is false',
      !info.decrypt && 'CKA_DECRYPT is false',
    ].filter(Boolean);
    if (wrong.length) throw new FatalInitError(`the health-check key "${this.healthKeyLabel}" is not usable: ${wrong.join('; ')}; ${fix}`);
  }

  /** Runs one operation in a pooled session, with the injected fault applied like a module error. */
  private session<T>(expiresAt: number, op: 'encrypt' | 'decrypt' | 'other', fn: (s: PooledSession) => Promise<T>): Promise<T> {
    return this.pool.use(expiresAt, async (s) => {
      if (this.fault.kind === 'fail') throw Pkcs11CallError.fromCkr(this.fault.ckr, 'fault', op);
      return fn(s);
    });
  }

  private keyFor(s: PooledSession, label: string): Handle {
    const key = this.keys.get(s, label);
    if (key) return key;
    // An RSA/EC key under the label is there, but cannot do AES-GCM: a usage answer, not a miss.
    if (findKeyObject(this.mod, s.handle, label)) throw new Pkcs11CallError('key-usage', 'C_FindObjects', undefined, `the key labelled "${label}" is not a secret key`);
    throw new KeyMissingError(`no key labelled "${label}" on this node`);
  }
}

function loadModule(path: string): Pkcs11StateModule {
  if (!existsSync(path)) throw new FatalInitError(`the PKCS#11 module ${path} does not exist; set module to the vendor library's path`);
  try {
    return new Pkcs11StateModule(path);
  } catch (err) {
    throw new FatalInitError(`the PKCS#11 module ${path} cannot be loaded (${describe(err)}); check that it is a PKCS#11 library for this platform`);
  }
}

function explainOpenFailure(cfg: HsmNodeOptions, err: unknown): Error {
  const pinSource = cfg.pin.file ? `the PIN file ${cfg.pin.file}` : `the variable ${cfg.pin.env}`;
  if (err instanceof TokenNotFoundError) {
    const seen = err.labels.length ? ` (tokens present: ${err.labels.map((l) => `"${l}"`).join(', ')})` : ' (no initialized token present)';
    const env = Object.keys(cfg.env).length ? ` and its environment (${Object.keys(cfg.env).join(', ')})` : '';
    return new FatalInitError(`${err.message}${seen}; fix tokenLabel/slot or the module's configuration${env}`);
  }
  if (err instanceof Pkcs11CallError) {
    switch (err.ckr) {
      case 'CKR_PIN_INCORRECT':
        return new FatalInitError(`login failed: CKR_PIN_INCORRECT; put the token's user PIN in ${pinSource} (repeated failures may lock the token)`, 'pin');
      case 'CKR_PIN_LOCKED':
        return new FatalInitError(`login failed: CKR_PIN_LOCKED; the token's security officer must unlock the user PIN`, 'pin');
      case 'CKR_PIN_EXPIRED':
        return new FatalInitError(`login failed: CKR_PIN_EXPIRED; set a new user PIN on the token and in ${pinSource}`, 'pin');
    }
    if (err.cls === 'login') return new FatalInitError(`login failed: ${err.ckr}; check ${pinSource}`, 'pin');
    return new FatalInitError(`${err.fn} failed with ${err.ckr ?? err.message}; check the module's configuration and logs`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

function describe(err: unknown): string {
  if (err instanceof Pkcs11CallError) return err.ckr ?? err.message;
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
