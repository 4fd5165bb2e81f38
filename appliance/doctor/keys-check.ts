// doctor's `keys` check: `xks keys verify` as doctor lines — every configured key one truth on
// every node, and each an AES-256 secret key.
import { checkConfiguredKeys, unusable } from '../keys/verify.js';
import { fail, ok, warn, type CheckResult, type DoctorCheck } from './check.js';

export const keysCheck: DoctorCheck = {
  name: 'keys',
  run: async ({ loaded }) => {
    const check = await checkConfiguredKeys(loaded.config);
    const out: CheckResult[] = [];
    for (const r of check.reports) {
      const name = `key ${r.label}`;
      if (r.state === 'split' || r.state === 'absent') out.push(fail(name, r.message, 'put the same key on every node (xks keys create; README "Preparing the HSMs")'));
      else if (r.state === 'degraded') out.push(warn(name, r.message, 'copy the key to the other nodes, or remove the wrong object there'));
      else out.push(ok(name, `the same key on ${r.nodes.length} node(s)${r.materialChecked ? ' (material compared)' : ''}`));
    }
    for (const line of unusable(loaded.config, check)) out.push(fail('keys', line, 'configure an AES-256 key (xks keys create)'));
    return out;
  },
};
