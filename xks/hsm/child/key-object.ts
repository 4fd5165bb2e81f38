// The key object under a CKA_LABEL, whatever its class, and what it really is: an operator may put
// an RSA or EC key pair or an HMAC secret under a configured label, and GetKeyMetadata must report
// its real keySpec and usage (spec K3, K5) instead of "not found".
import pkcs11js from 'pkcs11js';
import type { KeyInfo } from '../types.js';
import { ckkName } from './ckr.js';
import { Pkcs11CallError, type Handle, type Pkcs11Module } from './pkcs11.js';

/** Preference when several objects share a label (a key pair has two). */
const CLASS_RANK: ReadonlyMap<number, number> = new Map([
  [pkcs11js.CKO_SECRET_KEY, 0],
  [pkcs11js.CKO_PRIVATE_KEY, 1],
  [pkcs11js.CKO_PUBLIC_KEY, 2],
]);
const CLASS_NAME: ReadonlyMap<number, string> = new Map([
  [pkcs11js.CKO_SECRET_KEY, 'SECRET_KEY'],
  [pkcs11js.CKO_PRIVATE_KEY, 'PRIVATE_KEY'],
  [pkcs11js.CKO_PUBLIC_KEY, 'PUBLIC_KEY'],
]);

/** DER-encoded curve OIDs (CKA_EC_PARAMS) -> KMS key spec names. */
const CURVES: ReadonlyMap<string, string> = new Map([
  ['06082a8648ce3d030107', 'ECC_NIST_P256'],
  ['06052b81040022', 'ECC_NIST_P384'],
  ['06052b81040023', 'ECC_NIST_P521'],
  ['06052b8104000a', 'ECC_SECG_P256K1'],
]);

const OTHER_USAGE: ReadonlyArray<[number, string]> = [
  [pkcs11js.CKA_SIGN, 'SIGN'],
  [pkcs11js.CKA_VERIFY, 'VERIFY'],
  [pkcs11js.CKA_WRAP, 'WRAP'],
  [pkcs11js.CKA_UNWRAP, 'UNWRAP'],
  [pkcs11js.CKA_DERIVE, 'DERIVE'],
];

/**
 * The token object labelled `label`: a secret key first, else a private key, else a public key;
 * null when the label names no key. Two secret keys under one label are a configuration error.
 */
export function findKeyObject(mod: Pkcs11Module, session: Handle, label: string): Handle | null {
  // Token objects only: the node's session copies of a key carry the same label.
  const found = mod.findObjects(session, [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_LABEL, value: label }], 8);
  let best: Handle | null = null;
  let bestRank = Infinity;
  let secrets = 0;
  for (const h of found) {
    const cls = mod.ulong(session, h, pkcs11js.CKA_CLASS);
    const rank = CLASS_RANK.get(cls);
    if (rank === undefined) continue;
    if (rank === 0) secrets++;
    if (rank < bestRank) {
      best = h;
      bestRank = rank;
    }
  }
  if (secrets > 1) throw new Pkcs11CallError('internal', 'C_FindObjects', undefined, `more than one secret key is labelled "${label}"`);
  return best;
}

export function describeKey(mod: Pkcs11Module, session: Handle, key: Handle): KeyInfo {
  const cls = mod.ulong(session, key, pkcs11js.CKA_CLASS);
  const keyType = normalType(ckkName(mod.ulong(session, key, pkcs11js.CKA_KEY_TYPE)));
  // Not every key type has CKA_VALUE_LEN (DES3, RSA and EC do not): 0 means "the token does not say".
  const valueLen = cls === pkcs11js.CKO_SECRET_KEY ? mod.ulong(session, key, pkcs11js.CKA_VALUE_LEN) : 0;
  let keySpec = keyType;
  if (keyType === 'AES' && valueLen > 0) keySpec = `AES_${valueLen * 8}`;
  else if (keyType === 'GENERIC_SECRET' && valueLen > 0) keySpec = `HMAC_${valueLen * 8}`;
  else if (keyType === 'RSA') {
    const bits = mod.ulong(session, key, pkcs11js.CKA_MODULUS_BITS) || 8 * (mod.attribute(session, key, pkcs11js.CKA_MODULUS)?.length ?? 0);
    if (bits > 0) keySpec = `RSA_${bits}`;
  } else if (keyType === 'EC') {
    const params = mod.attribute(session, key, pkcs11js.CKA_EC_PARAMS);
    keySpec = (params && CURVES.get(params.toString('hex'))) ?? 'EC';
  }
  return {
    objectClass: CLASS_NAME.get(cls) ?? `0x${cls.toString(16)}`,
    keyType,
    valueLen,
    keySpec,
    encrypt: mod.bool(session, key, pkcs11js.CKA_ENCRYPT),
    decrypt: mod.bool(session, key, pkcs11js.CKA_DECRYPT),
    otherUsage: OTHER_USAGE.filter(([attr]) => mod.bool(session, key, attr)).map(([, name]) => name),
  };
}

/** CKK_EC and CKK_ECDSA are one value; pkcs11js may name it either way. */
function normalType(name: string): string {
  return name === 'ECDSA' ? 'EC' : name;
}
