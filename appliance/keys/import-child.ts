// The per-node side of `xks keys create`: runs in a process of its own, with that node's module
// environment (SOFTHSM2_CONF differs per node), reads the node's PIN itself and imports the key
// material it got over IPC as a sensitive, non-extractable token object, then zeroises it. The
// material never touches argv, the environment or a disk.
import { pathToFileURL } from 'node:url';
import type { HsmNodeOptions } from '../../xks/hsm/options.js';
import { Pkcs11AdminModule } from '../../xks/hsm/admin/token-admin.js';
import { findKeyObject } from '../../xks/hsm/child/key-object.js';
import { readPin } from '../../xks/hsm/child/pin.js';

export interface ImportRequest {
  node: HsmNodeOptions;
  label: string;
  material: Uint8Array;
  encrypt: boolean;
  decrypt: boolean;
  /** Only log in and check that the label is free (before any node gets material). */
  dryRun?: boolean;
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
