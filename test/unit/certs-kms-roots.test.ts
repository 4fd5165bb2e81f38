// The project's copy of KMS's trusted roots, checked against real certificates from Node's
// bundled Mozilla store: this is what proves the list's fingerprint format.
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import t from 'tap';
import { findKmsRoot, kmsTrustedRoots, sha256Fingerprint } from '../../appliance/certs/kms-roots.js';

const ISRG_X1_SHA256 = '96bcec06264976f37460779acf28c5a7cfe8a3c0aae11a8ffcee05c0bddf08c6';
const bundled = (cn: string) => {
  const cert = rootCertificates.map((p) => new X509Certificate(p)).find((c) => c.subject.split('\n').includes(`CN=${cn}`));
  if (!cert) throw new Error(`${cn} is not in Node's root store`);
  return cert;
};

t.test('the list loads: 130 roots keyed by lowercase hex SHA-256', async (t) => {
  const roots = kmsTrustedRoots();
  t.equal(roots.size, 130);
  for (const [fp, r] of roots) {
    t.equal(fp, r.sha256);
    t.match(fp, /^[0-9a-f]{64}$/);
  }
});

t.test('ISRG Root X1 is in the list by fingerprint, ISRG Root X2 is not', async (t) => {
  const x1 = bundled('ISRG Root X1');
  t.equal(sha256Fingerprint(x1), ISRG_X1_SHA256, 'SHA-256 over the DER, lowercase, no colons');
  t.equal(sha256Fingerprint(x1), x1.fingerprint256.replaceAll(':', '').toLowerCase(), 'agrees with OpenSSL');
  t.equal(kmsTrustedRoots().get(ISRG_X1_SHA256)?.alias, 'isrgrootx1');
  t.equal(findKmsRoot(x1)?.subject, 'CN=ISRG Root X1, O=Internet Security Research Group, C=US');

  const x2 = bundled('ISRG Root X2');
  t.equal(findKmsRoot(x2), undefined);
  t.notOk([...kmsTrustedRoots().values()].some((r) => r.subject.includes('ISRG Root X2')), 'not under any name either');
});

t.test('most KMS roots are in Node store, Amazon Root CA 1-4 among them', async (t) => {
  const inStore = rootCertificates.filter((p) => findKmsRoot(new X509Certificate(p))).length;
  t.ok(inStore >= 90, `${inStore} of 130 found by fingerprint`);
  for (const n of [1, 2, 3, 4]) t.equal(findKmsRoot(bundled(`Amazon Root CA ${n}`))?.alias, `amazonrootca${n}`);
});
