// Mutators of one layer: Authorization and X-Amz-Date after signing.
import { headerIndex } from '../draft.js';
import { type Mutator, sizeOf } from './util.js';

export const AUTH_MUTATORS: Mutator[] = [
  {
    name: 'auth.signature-tweak', layer: 'auth', weight: 4,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const at = v.lastIndexOf('Signature=') + 10 + r.int(64);
      const tweak = r.pick([
        () => v.slice(0, at) + ((parseInt(v[at] ?? '0', 16) + 1) % 16).toString(16) + v.slice(at + 1),
        () => v.replace(/Signature=([0-9a-f]+)/, (_m, s: string) => `Signature=${s.toUpperCase()}`),
        () => v.slice(0, -1),
        () => v + '0',
        () => v + ' ',
        () => v.replace(/Signature=[0-9a-f]+/, 'Signature=' + '0'.repeat(64)),
      ]);
      d.headers[i] = [d.headers[i]![0], tweak()];
    },
  },
  {
    name: 'auth.garble', layer: 'auth', weight: 3,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const g = r.pick([
        () => v.replace('AWS4-HMAC-SHA256', 'aws4-hmac-sha256'),
        () => v.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA512'),
        () => v.replace(/, /g, ','),
        () => v.replace(/, /g, ';'),
        () => v.replace(/Credential=[^,]*, /, ''),
        () => v.replace(/(SignedHeaders=[^,]*)/, '$1, $1'),
        () => v.replace(/SignedHeaders=([^,]*)/, (_m, s: string) => `SignedHeaders=${s.split(';').reverse().join(';')}`),
        () => v.replace(/SignedHeaders=([^,]*)/, (_m, s: string) => `SignedHeaders=${s.replace('host;', '')}`),
        () => v.replace(/SignedHeaders=([^,]*)/, 'SignedHeaders=authorization;host;x-amz-date'),
        () => v.replace(/Credential=([^/]*)/, `Credential=${r.pick(['', 'A'.repeat(200), '../', 'XKS%00'])}`),
        () => v.replace(/\/kms-xks-proxy\//, '/kms/'),
        () => v + ', ' + 'x'.repeat(sizeOf(r, [10], [3000])),
        () => v.slice(0, r.int(v.length)),
        () => 'AWS4-HMAC-SHA256',
        () => 'Basic dXNlcjpwYXNz',
        () => '',
      ]);
      d.headers[i] = [d.headers[i]![0], g()];
    },
  },
  {
    name: 'auth.amz-date', layer: 'auth', weight: 2,
    apply(d, r) {
      const i = headerIndex(d, 'x-amz-date');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const choice = r.int(4);
      if (choice === 0) d.headers.splice(i, 1);
      else if (choice === 1) d.headers.push(['X-Amz-Date', v]);
      else d.headers[i] = [d.headers[i]![0], r.pick(['garbage', '20261301T000000Z', '20260230T000000Z', v.slice(0, 8) + 'T246060Z', v.replace('Z', ''), `${v} `, '19700101T000000Z', ''])];
    },
  },
  {
    name: 'auth.duplicate-or-drop', layer: 'auth', weight: 2,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      if (r.chance(0.5)) d.headers.splice(i, 1);
      else d.headers.splice(r.int(d.headers.length + 1), 0, [r.pick(['Authorization', 'authorization']), d.headers[i]![1]]);
    },
  },

];
