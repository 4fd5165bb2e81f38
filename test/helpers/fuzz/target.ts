// What a fuzz run is aimed at: the demo's endpoint, credentials, keys, and valid sealed inputs.
import { DEMO_KEYS } from '../../../appliance/demo/layout.js';
import type { DemoJson } from '../demo.js';
import { gcmSeal, loadKeyMaterial, specHsmAad } from '../oracle.js';
import type { Credential } from '../sign.js';
import { Rng } from '../rng.js';

export type { Credential };

export type Api = 'health' | 'metadata' | 'encrypt' | 'decrypt';
export const APIS: readonly Api[] = ['health', 'metadata', 'encrypt', 'decrypt'];

/** A valid Decrypt input (an oracle ciphertext), base64 fields as the API takes them. */
export interface SealedInput {
  keyId: string;
  /** What a successful Decrypt of it must return (base64); not sent. */
  plaintext: string;
  ciphertext: string;
  initializationVector: string;
  authenticationTag: string;
  ciphertextMetadata: string;
  additionalAuthenticatedData?: string;
}

export interface FuzzTarget {
  /** Host header value, e.g. localhost:8443 (signed). */
  host: string;
  uriPath: string;
  region: string;
  primary: Credential;
  second: Credential;
  /** The demo's keys: the first is the encrypt+decrypt key most cases use. */
  keyIds: readonly string[];
  sealed: readonly SealedInput[];
  /** One signing time for the whole run (SigV4 allows 5 minutes of skew). */
  date: Date;
  maxBodyBytes: number;
}

/**
 * The demo as a fuzz target. Decrypt cases start from ciphertexts sealed here by the oracle
 * (Node's aes-256-gcm with the demo's key material and the spec's HSM AAD), with IVs and
 * plaintexts from the seed, so they are valid and the same on every run.
 */
export function demoTarget(demo: DemoJson, dir: string, seed: number, maxBodyBytes: number): FuzzTarget {
  const material = loadKeyMaterial(dir);
  const r = new Rng(seed);
  const metadata = Buffer.from([0x01]); // ciphertextMetadata format version 1 (xks/aad.ts)
  const sealed: SealedInput[] = [];
  for (const keyId of [demo.keys.encryptDecrypt, demo.keys.encryptDecrypt, demo.keys.encryptDecrypt, demo.keys.decryptOnly]) {
    for (let i = 0; i < 4; i++) {
      const aad = r.chance(0.5) ? r.bytes(r.range(1, 32)) : Buffer.alloc(0);
      const key = material.get(DEMO_KEYS.find((k) => k.id === keyId)!.label)!;
      const plaintext = r.bytes(r.pick([1, 32, 100]));
      const s = gcmSeal(key, plaintext, specHsmAad(aad, metadata), r.bytes(12));
      sealed.push({
        keyId,
        plaintext: plaintext.toString('base64'),
        ciphertext: s.ciphertext.toString('base64'),
        initializationVector: s.iv.toString('base64'),
        authenticationTag: s.tag.toString('base64'),
        ciphertextMetadata: metadata.toString('base64'),
        ...(aad.length ? { additionalAuthenticatedData: aad.toString('base64') } : {}),
      });
    }
  }
  const k = demo.keys;
  return {
    host: new URL(demo.endpoint).host,
    uriPath: demo.uriPath,
    region: demo.region,
    primary: { accessKeyId: demo.accessKeyId, secretAccessKey: demo.secretAccessKey },
    second: demo.secondCredential,
    keyIds: [k.encryptDecrypt, k.encryptOnly, k.decryptOnly, k.noUsage, k.disabled, 'no-such-key'],
    sealed,
    date: new Date(),
    maxBodyBytes,
  };
}
