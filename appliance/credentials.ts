// SigV4 credential sets for key stores (spec S6/S7): what `xks init` (and the demo) generate.
import { randomBytes, randomInt } from 'node:crypto';
import type { Credential } from './config/schema.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** An access key id of 20 characters of A-Z2-7 and a 256-bit secret in base64 (44 characters). */
export function newCredential(): Credential {
  let id = 'XKS';
  while (id.length < 20) id += BASE32[randomInt(32)];
  return { accessKeyId: id, secretAccessKey: randomBytes(32).toString('base64') };
}
