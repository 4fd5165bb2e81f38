// Token provisioning through the PKCS#11 module, as an HSM vendor's tool would do it: initialize a
// token, set the user PIN, import keys. Used by the demo and the tests; never on the data path, so
// the node processes do not load this code.
import pkcs11js from 'pkcs11js';
import { Pkcs11Module, call, type Handle } from '../child/pkcs11.js';

export const CKU_SO: number = pkcs11js.CKU_SO;

export class Pkcs11AdminModule extends Pkcs11Module {
  /** Slots whose token is not initialized yet (SoftHSM2 always offers one). */
  freeSlots(): Handle[] {
    const slots = call('C_GetSlotList', 'other', () => this.lib.C_GetSlotList(true));
    return slots.filter((s) => (this.lib.C_GetTokenInfo(s).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
  }

  initToken(slot: Handle, soPin: string, label: string): void {
    call('C_InitToken', 'other', () => this.lib.C_InitToken(slot, soPin, label.padEnd(32, ' ')));
  }

  initUserPin(session: Handle, pin: string): void {
    call('C_InitPIN', 'other', () => this.lib.C_InitPIN(session, pin));
  }

  /**
   * Generates an RSA-2048 or EC P-256 key pair under one label (both objects): what an operator
   * might put under a configured label by mistake; the appliance must report it as what it is.
   */
  generateKeyPair(session: Handle, k: { label: string; keyType: 'RSA' | 'EC' }): void {
    const common = [
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: k.label },
    ];
    const rsa = k.keyType === 'RSA';
    const mechanism: pkcs11js.Mechanism = { mechanism: rsa ? pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN };
    const pub = rsa
      ? [...common, { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: pkcs11js.CKA_VERIFY, value: true }]
      : [...common, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }, { type: pkcs11js.CKA_VERIFY, value: true }];
    const priv = [...common, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_SIGN, value: true }];
    call('C_GenerateKeyPair', 'other', () => this.lib.C_GenerateKeyPair(session, mechanism, pub, priv));
  }

  /** Imports a secret key as a sensitive, non-extractable token object. */
  importSecretKey(
    session: Handle,
    k: { label: string; material: Buffer; keyType: 'AES' | 'GENERIC_SECRET'; encrypt: boolean; decrypt: boolean; unwrap?: boolean | undefined; copyable?: boolean | undefined },
  ): Handle {
    const template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: k.keyType === 'AES' ? pkcs11js.CKK_AES : pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE, value: k.material },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: k.encrypt },
      { type: pkcs11js.CKA_DECRYPT, value: k.decrypt },
      ...(k.unwrap === undefined ? [] : [{ type: pkcs11js.CKA_UNWRAP, value: k.unwrap }]),
      ...(k.copyable === undefined ? [] : [{ type: pkcs11js.CKA_COPYABLE, value: k.copyable }]),
      { type: pkcs11js.CKA_LABEL, value: k.label },
    ];
    return call('C_CreateObject', 'other', () => this.lib.C_CreateObject(session, template));
  }

  /**
   * Unwraps AES-256 material (RFC 5649 or RFC 3394) under `wrappingKey` into a sensitive,
   * non-extractable key; `token` false makes a session object that vanishes with the session (the
   * check every node passes before any node keeps one).
   */
  unwrapAesKey(
    session: Handle,
    k: { label: string; wrapped: Buffer; wrappingKey: Handle; mechanism: 'aes-key-wrap-pad' | 'aes-key-wrap'; encrypt: boolean; decrypt: boolean; token: boolean },
  ): Handle {
    const mechanism = { mechanism: k.mechanism === 'aes-key-wrap-pad' ? pkcs11js.CKM_AES_KEY_WRAP_PAD : pkcs11js.CKM_AES_KEY_WRAP };
    const template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: k.token },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: k.encrypt },
      { type: pkcs11js.CKA_DECRYPT, value: k.decrypt },
      { type: pkcs11js.CKA_LABEL, value: k.label },
    ];
    return call('C_UnwrapKey', 'other', () => this.lib.C_UnwrapKey(session, mechanism, k.wrappingKey, k.wrapped, template));
  }
}
