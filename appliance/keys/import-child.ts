// The per-node side of `xks keys create`: runs in a process of its own, with that node's module
// environment (SOFTHSM2_CONF differs per node), reads the node's PIN itself and imports the key
// material it got over IPC as a sensitive, non-extractable token object, then zeroises it. The
// material never touches argv, the environment or a disk.
import { pathToFileURL } from 'node:url';
import pkcs11js from 'pkcs11js';
import type { HsmNodeOptions } from '../../xks/hsm/options.js';
import { Pkcs11AdminModule } from '../../xks/hsm/admin/token-admin.js';
import { findKeyObject } from '../../xks/hsm/child/key-object.js';
import { readPin } from '../../xks/hsm/child/pin.js';
import type { Handle } from '../../xks/hsm/child/pkcs11.js';

export interface ImportRequest {
  node: HsmNodeOptions;
  label: string;
  material: Uint8Array;
  encrypt: boolean;
  decrypt: boolean;
  /** Only log in and check that the label is free (before any node gets material). */
  dryRun?: boolean;
  /**
   * `xks keys import`: `material` is wrapped (RFC 5649/3394) under the token's key `wrappingLabel`
   * and is unwrapped inside the HSM (C_UnwrapKey); a dry run unwraps into a session object and
   * destroys it, so a wrong wrapping key or damaged file is refused before any node keeps a key.
   */
  unwrap?: { wrappingLabel: string; mechanism: 'aes-key-wrap-pad' | 'aes-key-wrap' };
}

export type ImportReply = { ok: true } | { ok: false; message: string; exists?: boolean };

function importHere(req: ImportRequest): ImportReply {
  const material = Buffer.from(req.material.buffer, req.material.byteOffset, req.material.byteLength);
  try {
    const mod = new Pkcs11AdminModule(req.node.module);
    mod.initialize();
    try {
      const slot = mod.findSlot({ tokenLabel: req.node.tokenLabel, slot: req.node.slot });
      const session = mod.openSession(slot, true);
      mod.login(session, readPin(req.node.pin));
      if (findKeyObject(mod, session, req.label)) return { ok: false, exists: true, message: `a key labelled "${req.label}" is already on the token` };
      if (req.unwrap) {
        const w = req.unwrap;
        const wrappingKey = findKeyObject(mod, session, w.wrappingLabel);
        if (!wrappingKey) return { ok: false, message: `no wrapping key labelled "${w.wrappingLabel}" on the token` };
        let key: Handle;
        try {
          key = mod.unwrapAesKey(session, { label: req.label, wrapped: material, wrappingKey, mechanism: w.mechanism, encrypt: req.encrypt, decrypt: req.decrypt, token: !req.dryRun });
        } catch (err) {
          return { ok: false, message: `could not unwrap the key with "${w.wrappingLabel}" (${w.mechanism}): wrong wrapping key or mechanism, or a damaged file (${err instanceof Error ? err.message : String(err)})` };
        }
        const bytes = mod.ulong(session, key, pkcs11js.CKA_VALUE_LEN);
        if (req.dryRun || bytes !== 32) mod.destroy(session, key);
        // The data path serves only keys the token reports as AES-256 (spec K5); SoftHSM2 2.6 sets
        // CKA_VALUE_LEN 0 on an unwrapped key and refuses it in the template, so such a key is unusable.
        if (bytes === 0) return { ok: false, message: `this HSM does not record the unwrapped key's length (CKA_VALUE_LEN 0 after C_UnwrapKey, as SoftHSM2 2.6 does), so the appliance could not serve it as AES_256; use xks keys create on this HSM` };
        if (bytes !== 32) return { ok: false, message: `the wrapped key is ${bytes * 8}-bit AES; KMS external keys are AES-256` };
        mod.closeSession(session);
        return { ok: true };
      }
      if (req.dryRun) return { ok: true };
      mod.importSecretKey(session, { label: req.label, material, keyType: 'AES', encrypt: req.encrypt, decrypt: req.decrypt });
      mod.closeSession(session);
      return { ok: true };
    } finally {
      mod.finalize();
    }
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  } finally {
    material.fill(0);
  }
}

if (process.send && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.once('message', (req: ImportRequest) => {
    process.send!(importHere(req), undefined, undefined, () => process.exit(0));
  });
}
