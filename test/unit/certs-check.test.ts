// checkServerCertificate against real certificates made by the dev PKI and real roots from
// Node's bundled Mozilla store (ISRG Root X1 is a KMS root, ISRG Root X2 is not).
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import t from 'tap';
import { checkServerCertificate, type CertReport } from '../../appliance/certs/check.js';
import { createCa, issueIntermediateCa, issueServerCert, selfSignedCert } from '../../appliance/certs/devpki.js';

const DAY = 86_400_000;
const HOST = 'xks.example.com';
const codes = (r: CertReport) => r.problems.map((p) => p.code).sort();
const errors = (r: CertReport) => r.problems.filter((p) => p.severity === 'error').map((p) => p.code).sort();
const bundled = (cn: string) => {
  const pem = rootCertificates.find((p) => new X509Certificate(p).subject.split('\n').includes(`CN=${cn}`));
  if (!pem) throw new Error(`${cn} is not in Node's root store`);
  return pem;
};

const root = createCa('Test Root');
const inter = issueIntermediateCa(root, 'Test Intermediate');
const leaf = issueServerCert(inter, { dnsNames: [HOST], ipAddresses: ['192.0.2.10'] });
const direct = issueServerCert(root, { dnsNames: [HOST], ipAddresses: [] });
const trustedRoots = [root.certPem];
const chain = (...pems: string[]) => pems.join('');

t.test('a complete chain to an accepted root is ok', async (t) => {
  const r = checkServerCertificate({ chainPem: chain(leaf.certPem, inter.certPem), keyPem: leaf.keyPem, hostname: HOST, trustedRoots });
  t.same(r.problems, []);
  t.equal(r.ok, true);
  t.equal(r.subject, `CN=${HOST}`);
  t.same(r.sans, [`DNS:${HOST}`, 'IP Address:192.0.2.10']);
  t.equal(r.chainEndsAt, 'CN=Test Root');
  t.equal(r.notAfter.getTime(), new Date(new X509Certificate(leaf.certPem).validTo).getTime(), 'the leaf expires first');
  t.ok(r.daysToExpire >= 395 && r.daysToExpire <= 397, `daysToExpire ${r.daysToExpire}`);
});

t.test('the root may be served too; a leaf straight under the root is fine', async (t) => {
  t.same(checkServerCertificate({ chainPem: chain(leaf.certPem, inter.certPem, root.certPem), keyPem: leaf.keyPem, hostname: HOST, trustedRoots }).problems, []);
  t.same(checkServerCertificate({ chainPem: direct.certPem, keyPem: direct.keyPem, hostname: HOST, trustedRoots }).problems, []);
});

t.test('the hostname must be in the SAN; a CN mismatch alone is a warning', async (t) => {
  const wrong = checkServerCertificate({ chainPem: direct.certPem, keyPem: direct.keyPem, hostname: 'other.example.com', trustedRoots });
  t.equal(wrong.ok, false);
  t.same(codes(wrong), ['CN_MISMATCH', 'HOSTNAME_NOT_IN_SAN']);
  t.match(wrong.problems.find((p) => p.code === 'HOSTNAME_NOT_IN_SAN')?.message, /DNS:other\.example\.com/);

  const cnOnly = issueServerCert(root, { cn: 'legacy.example.com', dnsNames: [HOST], ipAddresses: [] });
  const r = checkServerCertificate({ chainPem: cnOnly.certPem, keyPem: cnOnly.keyPem, hostname: HOST, trustedRoots });
  t.equal(r.ok, true);
  t.same(r.problems.map((p) => [p.severity, p.code]), [['warning', 'CN_MISMATCH']]);
});

t.test('wildcards match one leftmost label; IP hostnames use IP SANs', async (t) => {
  const wild = issueServerCert(root, { dnsNames: ['*.example.com'], ipAddresses: ['192.0.2.10'] });
  const check = (hostname: string) => checkServerCertificate({ chainPem: wild.certPem, keyPem: wild.keyPem, hostname, trustedRoots });
  t.same(check('xks.example.com').problems, []);
  t.same(codes(check('a.xks.example.com')), ['CN_MISMATCH', 'HOSTNAME_NOT_IN_SAN']);
  t.same(check('192.0.2.10').problems, []);
  t.same(codes(check('192.0.2.11')), ['HOSTNAME_NOT_IN_SAN']);
});

t.test('expired, not yet valid, and about to expire', async (t) => {
  const now = Date.now();
  const expired = issueServerCert(root, { dnsNames: [HOST], ipAddresses: [], notBefore: new Date(now - 400 * DAY), notAfter: new Date(now - DAY) });
  const r = checkServerCertificate({ chainPem: expired.certPem, keyPem: expired.keyPem, hostname: HOST, trustedRoots });
  t.same(errors(r), ['EXPIRED']);
  t.ok(r.daysToExpire < 0);

  const future = issueServerCert(root, { dnsNames: [HOST], ipAddresses: [], notBefore: new Date(now + DAY), days: 90 });
  t.same(errors(checkServerCertificate({ chainPem: future.certPem, keyPem: future.keyPem, hostname: HOST, trustedRoots })), ['NOT_YET_VALID']);

  const soon = issueServerCert(root, { dnsNames: [HOST], ipAddresses: [], notAfter: new Date(now + 10 * DAY) });
  const s = checkServerCertificate({ chainPem: soon.certPem, keyPem: soon.keyPem, hostname: HOST, trustedRoots });
  t.equal(s.ok, true, 'a warning does not fail the check');
  t.same(s.problems.map((p) => [p.severity, p.code]), [['warning', 'EXPIRES_SOON']]);
  t.ok(s.daysToExpire >= 9 && s.daysToExpire <= 10);
  t.same(checkServerCertificate({ chainPem: soon.certPem, keyPem: soon.keyPem, hostname: HOST, trustedRoots, warnDays: 5 }).problems, []);
});

t.test('an expiring intermediate counts too', async (t) => {
  const shortInter = issueIntermediateCa(root, 'Short Intermediate', { notAfter: new Date(Date.now() + 7 * DAY) });
  const l = issueServerCert(shortInter, { dnsNames: [HOST], ipAddresses: [] });
  const r = checkServerCertificate({ chainPem: chain(l.certPem, shortInter.certPem), keyPem: l.keyPem, hostname: HOST, trustedRoots });
  t.same(codes(r), ['EXPIRES_SOON']);
  t.match(r.problems[0]!.message, /Short Intermediate/);
  t.ok(r.daysToExpire <= 7, 'daysToExpire follows the earliest certificate');
});

t.test('an expired extra root is refused', async (t) => {
  const old = createCa('Old Root', { notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) });
  const l = issueServerCert(old, { dnsNames: [HOST], ipAddresses: [], notBefore: new Date(Date.now() - 10 * DAY) });
  const r = checkServerCertificate({ chainPem: l.certPem, keyPem: l.keyPem, hostname: HOST, trustedRoots: [old.certPem] });
  t.same(errors(r), ['ROOT_EXPIRED']);
  t.equal(r.chainEndsAt, 'CN=Old Root');
});

t.test('the key must belong to the leaf and parse', async (t) => {
  t.same(errors(checkServerCertificate({ chainPem: direct.certPem, keyPem: leaf.keyPem, hostname: HOST, trustedRoots })), ['KEY_MISMATCH']);
  const garbage = checkServerCertificate({ chainPem: direct.certPem, keyPem: 'not a key', hostname: HOST, trustedRoots });
  t.same(errors(garbage), ['KEY_INVALID']);
  t.notMatch(JSON.stringify(garbage.problems), /PRIVATE KEY/, 'no key material in messages');
});

t.test('chain order and completeness', async (t) => {
  const outOfOrder = checkServerCertificate({ chainPem: chain(leaf.certPem, root.certPem, inter.certPem), keyPem: leaf.keyPem, hostname: HOST, trustedRoots });
  t.same(errors(outOfOrder), ['CHAIN_ORDER']);
  t.equal(outOfOrder.chainEndsAt, null);

  const reversed = checkServerCertificate({ chainPem: chain(inter.certPem, leaf.certPem), keyPem: leaf.keyPem, hostname: HOST, trustedRoots });
  t.ok(errors(reversed).includes('LEAF_IS_CA') && errors(reversed).includes('CHAIN_ORDER'));

  const unrelated = checkServerCertificate({ chainPem: chain(leaf.certPem, createCa('Stranger').certPem), keyPem: leaf.keyPem, hostname: HOST, trustedRoots });
  t.same(errors(unrelated), ['CHAIN_BROKEN']);

  // The intermediate is missing: nothing at hand issued the leaf.
  const missing = checkServerCertificate({ chainPem: leaf.certPem, keyPem: leaf.keyPem, hostname: HOST, trustedRoots });
  t.same(errors(missing), ['ROOT_NOT_FOUND']);
  t.match(missing.problems[0]!.message, /Test Intermediate/);
});

t.test('PEM problems', async (t) => {
  t.same(errors(checkServerCertificate({ chainPem: '', keyPem: direct.keyPem, hostname: HOST })), ['PEM_NO_CERTIFICATE']);
  const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const r = checkServerCertificate({ chainPem: chain(direct.certPem, broken), keyPem: direct.keyPem, hostname: HOST });
  t.same(errors(r), ['PEM_INVALID']);
  t.match(r.problems[0]!.message, /#2/);
  t.ok(Number.isNaN(r.daysToExpire));
  t.same(errors(checkServerCertificate({ chainPem: direct.certPem, keyPem: direct.keyPem, hostname: HOST, trustedRoots: ['junk'] })), ['ROOT_NOT_FOUND', 'TRUSTED_ROOT_INVALID']);
});

t.test('a root outside KMS list is an error, by default and for self-signed certs', async (t) => {
  const r = checkServerCertificate({ chainPem: chain(direct.certPem, root.certPem), keyPem: direct.keyPem, hostname: HOST });
  t.same(errors(r), ['ROOT_NOT_TRUSTED_BY_KMS']);
  t.equal(r.chainEndsAt, 'CN=Test Root');
  t.same(errors(checkServerCertificate({ chainPem: direct.certPem, keyPem: direct.keyPem, hostname: HOST })), ['ROOT_NOT_FOUND'], 'the demo root is not assumed');
  const self = selfSignedCert({ cn: HOST, dnsNames: [HOST] });
  t.same(errors(checkServerCertificate({ chainPem: self.certPem, keyPem: self.keyPem, hostname: HOST, trustedRoots })), ['ROOT_NOT_TRUSTED_BY_KMS']);
});

t.test('a root is matched by fingerprint, never by name', async (t) => {
  const fake = createCa('ISRG Root X1', { organization: 'Internet Security Research Group', country: 'US' });
  const l = issueServerCert(fake, { dnsNames: [HOST], ipAddresses: [] });
  const served = checkServerCertificate({ chainPem: chain(l.certPem, fake.certPem), keyPem: l.keyPem, hostname: HOST });
  t.same(errors(served), ['ROOT_NOT_TRUSTED_BY_KMS']);
  t.equal(served.chainEndsAt, 'C=US, O=Internet Security Research Group, CN=ISRG Root X1');
  const notServed = checkServerCertificate({ chainPem: l.certPem, keyPem: l.keyPem, hostname: HOST });
  t.same(errors(notServed), ['ROOT_NOT_FOUND']);
  t.match(notServed.problems[0]!.message, /isrgrootx1.*fingerprint/, 'the hint names the KMS root and the rule');
});

t.test('real roots: ISRG Root X1 is a KMS root, X2 is not; expired KMS roots are flagged', async (t) => {
  // A chain file holding only the root: leaf checks fail, but the anchor verdict is real.
  const x1 = bundled('ISRG Root X1');
  const anchorCodes = (r: CertReport) => codes(r).filter((c) => c.startsWith('ROOT_'));
  const r1 = checkServerCertificate({ chainPem: x1, keyPem: direct.keyPem, hostname: HOST, now: new Date('2030-01-01T00:00:00Z') });
  t.same(anchorCodes(r1), []);
  t.equal(r1.chainEndsAt, 'C=US, O=Internet Security Research Group, CN=ISRG Root X1');

  const r2 = checkServerCertificate({ chainPem: bundled('ISRG Root X2'), keyPem: direct.keyPem, hostname: HOST, now: new Date('2030-01-01T00:00:00Z') });
  t.same(anchorCodes(r2), ['ROOT_NOT_TRUSTED_BY_KMS']);

  // KMS's list says ISRG Root X1 ends on 2035-06-04.
  const late = checkServerCertificate({ chainPem: x1, keyPem: direct.keyPem, hostname: HOST, now: new Date('2035-06-05T00:00:00Z') });
  t.same(anchorCodes(late), ['ROOT_EXPIRED']);
  const close = checkServerCertificate({ chainPem: x1, keyPem: direct.keyPem, hostname: HOST, now: new Date('2035-05-20T00:00:00Z') });
  t.same(anchorCodes(close), ['ROOT_EXPIRES_SOON']);
});
