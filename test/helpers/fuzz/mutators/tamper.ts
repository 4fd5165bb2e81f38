// Mutators of one layer: signed bytes changed after signing. The signature covers the path and
// the body (S3), so a server must refuse these at authentication however valid they look
// otherwise; a request one signed byte away from one that succeeds is the sharpest SigV4 test.
// The case builder compares the result with what was signed (two tamperings may cancel out).
import type { Mutator } from './util.js';

const OPERATIONS = ['encrypt', 'decrypt', 'metadata'];

export const TAMPER_MUTATORS: Mutator[] = [
  {
    name: 'tamper.body', layer: 'tamper', weight: 3,
    apply(d, r) {
      if (d.body.length === 0) return;
      const body = Buffer.from(d.body);
      // A byte of kmsRequestId's value where there is one: the body stays valid JSON that would
      // have succeeded as signed.
      const at = body.indexOf('"kmsRequestId":"');
      const i = at >= 0 && body.length > at + 16 ? at + 16 : r.int(body.length);
      body[i] = body[i] === 0x61 ? 0x62 : 0x61;
      d.body = body;
    },
  },
  {
    name: 'tamper.path', layer: 'tamper', weight: 2,
    apply(d, r, t) {
      // Another key or another operation: the path still routes, and must then fail SigV4.
      const next = r.chance(0.5)
        ? d.target.replace(/\/keys\/[^/]+\//, `/keys/${r.pick(t.keyIds)}/`)
        : d.target.replace(/\/(encrypt|decrypt|metadata)$/, (_m, op: string) => `/${r.pick(OPERATIONS.filter((o) => o !== op))}`);
      d.target = next;
    },
  },
];
