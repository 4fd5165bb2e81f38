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
      // [the tweak, whether it certainly breaks the signature]: an upper-case or space-padded
      // signature is a reading a verifier may accept.
      const [tweak, breaks] = r.pick<readonly [() => string, boolean]>([
        [() => v.slice(0, at) + ((parseInt(v[at] ?? '0', 16) + 1) % 16).toString(16) + v.slice(at + 1), true],
        [() => v.replace(/Signature=([0-9a-f]+)/, (_m, s: string) => `Signature=${s.toUpperCase()}`), false],
        [() => v.slice(0, -1), true],
        [() => v + '0', true],
        [() => v + ' ', false],
        [() => v.replace(/Signature=[0-9a-f]+/, 'Signature=' + '0'.repeat(64)), true],
      ]);
      d.headers[i] = [d.headers[i]![0], tweak()];
      if (breaks) d.authBroken = true;
    },
  },
  {
    name: 'auth.garble', layer: 'auth', weight: 3,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      const v = d.headers[i]![1];
      // [the garbling, whether it certainly fails authentication]: spellings of the separators
      // and of the signed-header list are left to the verifier's reading.
      const [g, breaks] = r.pick<readonly [() => string, boolean]>([
        [() => v.replace('AWS4-HMAC-SHA256', 'aws4-hmac-sha256'), false],
        [() => v.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA512'), true],
        [() => v.replace(/, /g, ','), false],
        [() => v.replace(/, /g, ';'), false],
        [() => v.replace(/Credential=[^,]*, /, ''), true],
        [() => v.replace(/(SignedHeaders=[^,]*)/, '$1, $1'), false],
        [() => v.replace(/SignedHeaders=([^,]*)/, (_m, s: string) => `SignedHeaders=${s.split(';').reverse().join(';')}`), false],
        [() => v.replace(/SignedHeaders=([^,]*)/, (_m, s: string) => `SignedHeaders=${s.replace('host;', '')}`), false],
        [() => v.replace(/SignedHeaders=([^,]*)/, 'SignedHeaders=authorization;host;x-amz-date'), false],
        [() => v.replace(/Credential=([^/]*)/, `Credential=${r.pick(['', 'A'.repeat(200), '../', 'XKS%00'])}`), true],
        [() => v.replace(/\/kms-xks-proxy\//, '/kms/'), true],
        [() => v + ', ' + 'x'.repeat(sizeOf(r, [10], [3000])), false],
        [() => v.slice(0, r.int(v.length)), true],
        [() => 'AWS4-HMAC-SHA256', true],
        [() => 'Basic dXNlcjpwYXNz', true],
        [() => '', true],
      ]);
      d.headers[i] = [d.headers[i]![0], g()];
      if (breaks) d.authBroken = true;
    },
  },
  {
    name: 'auth.amz-date', layer: 'auth', weight: 2,
    apply(d, r) {
      const i = headerIndex(d, 'x-amz-date');
      if (i < 0) return;
      const v = d.headers[i]![1];
      const choice = r.int(4);
      if (choice === 0) {
        d.headers.splice(i, 1);
        d.authBroken = true;
      }
      else if (choice === 1) d.headers.push(['X-Amz-Date', v]);
      else {
        const date = r.pick(['garbage', '20261301T000000Z', '20260230T000000Z', v.slice(0, 8) + 'T246060Z', v.replace('Z', ''), `${v} `, '19700101T000000Z', '']);
        d.headers[i] = [d.headers[i]![0], date];
        // Any other date than the one signed (a padded copy may be read as the same).
        if (date.trim() !== v) d.authBroken = true;
      }
    },
  },
  {
    name: 'auth.duplicate-or-drop', layer: 'auth', weight: 2,
    apply(d, r) {
      const i = headerIndex(d, 'authorization');
      if (i < 0) return;
      if (r.chance(0.5)) {
        d.headers.splice(i, 1);
        d.authBroken = true;
      } else d.headers.splice(r.int(d.headers.length + 1), 0, [r.pick(['Authorization', 'authorization']), d.headers[i]![1]]);
    },
  },

];
