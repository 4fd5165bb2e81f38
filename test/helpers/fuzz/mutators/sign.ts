// Mutators of one layer: signing choices (before the signature is computed). Whether the final
// choices can authenticate is judged once, by the case builder.
import type { Mutator } from './util.js';

export const SIGN_MUTATORS: Mutator[] = [
  {
    name: 'sign.second-credential', layer: 'sign', weight: 2,
    apply(d, _r, t) {
      d.sign.with = t.second;
    },
  },
  {
    name: 'sign.unsigned', layer: 'sign', weight: 1,
    apply(d) {
      d.sign.with = null;
    },
  },
  {
    name: 'sign.wrong-secret', layer: 'sign', weight: 1,
    apply(d, r, t) {
      d.sign.with = { accessKeyId: r.chance(0.5) ? t.primary.accessKeyId : 'XKS' + 'A'.repeat(17), secretAccessKey: t.second.secretAccessKey };
    },
  },
  {
    name: 'sign.scope', layer: 'sign', weight: 1,
    apply(d, r, t) {
      if (r.chance(0.5)) d.sign.region = r.pick(['us-west-2', 'eu-central-1', 'US-EAST-1', '', 'x'.repeat(40)]);
      else d.sign.date = new Date(t.date.getTime() + r.pick([-1, 1]) * r.pick([6 * 60_000, 86_400_000, 3650 * 86_400_000]));
    },
  },
  {
    name: 'sign.extra-headers', layer: 'sign', weight: 2,
    apply(d, r) {
      d.sign.extraSigned.push('content-type');
      if (r.chance(0.5)) {
        d.headers.push(['X-Amz-Fuzz', r.hex(8)]);
        d.sign.extraSigned.push('x-amz-fuzz');
      }
    },
  },

];
