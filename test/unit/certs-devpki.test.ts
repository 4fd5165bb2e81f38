// The dev PKI: what each certificate carries, and ensureDemoPki's files, modes and reuse.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import forge from 'node-forge';
import t from 'tap';
import { checkServerCertificate } from '../../appliance/certs/check.js';
import { createCa, ensureDemoPki, issueClientCert, issueServerCert, selfSignedCert, type DemoPkiOptions } from '../../appliance/certs/devpki.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY = 86_400_000;
const ext = (pem: string, name: string) => forge.pki.certificateFromPem(pem).getExtension(name) as Record<string, unknown> | undefined;

const ca = createCa('Unit CA');

t.test('createCa: a self-signed CA for signing certificates, with an SKI', async (t) => {
  const c = new X509Certificate(ca.certPem);
  t.equal(c.ca, true);
  t.equal(c.subject, 'CN=Unit CA');
  t.ok(c.verify(c.publicKey));
  t.match(ext(ca.certPem, 'basicConstraints'), { cA: true, critical: true });
  t.match(ext(ca.certPem, 'keyUsage'), { keyCertSign: true, critical: true });
  t.match(ext(ca.certPem, 'subjectKeyIdentifier'), { subjectKeyIdentifier: /^[0-9a-f]{40}$/ });
  t.ok(c.checkPrivateKey(createPrivateKey(ca.keyPem)));
  t.equal(createPrivateKey(ca.keyPem).asymmetricKeyDetails?.modulusLength, 2048);
  const days = (new Date(c.validTo).getTime() - new Date(c.validFrom).getTime()) / DAY;
  t.ok(days > 3640, `valid ${days} days`);
});

t.test('issueServerCert: SAN with DNS and IP, CN = first DNS name, serverAuth, AKI = CA SKI', async (t) => {
  const s = issueServerCert(ca, { dnsNames: ['localhost', 'xks.internal'], ipAddresses: ['127.0.0.1', '::1'] });
  const c = new X509Certificate(s.certPem);
  t.equal(c.subject, 'CN=localhost');
  t.equal(c.subjectAltName, 'DNS:localhost, DNS:xks.internal, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  t.same(c.keyUsage, [SERVER_AUTH]);
  t.equal(c.ca, false);
  t.ok(c.checkIssued(new X509Certificate(ca.certPem)) && c.verify(new X509Certificate(ca.certPem).publicKey));
  t.ok(c.checkPrivateKey(createPrivateKey(s.keyPem)));
  // AKI = SEQUENCE { [0] keyIdentifier }, the key identifier being the CA's SKI.
  const aki = ext(s.certPem, 'authorityKeyIdentifier')?.value as string;
  const caSki = ext(ca.certPem, 'subjectKeyIdentifier')?.subjectKeyIdentifier as string;
  t.equal(forge.util.bytesToHex(aki), `30168014${caSki}`);
  t.not(new X509Certificate(s.certPem).serialNumber, new X509Certificate(issueServerCert(ca, { dnsNames: ['localhost'], ipAddresses: [] }).certPem).serialNumber);
});

t.test('issueClientCert: clientAuth, the given CN, and expired on request', async (t) => {
  const cl = new X509Certificate(issueClientCert(ca, { cn: 'cks.kms.eu-west-1.amazonaws.com' }).certPem);
  t.equal(cl.subject, 'CN=cks.kms.eu-west-1.amazonaws.com');
  t.same(cl.keyUsage, [CLIENT_AUTH]);
  t.equal(cl.subjectAltName, undefined);
  const notAfter = new Date(Date.now() - DAY);
  const expired = new X509Certificate(issueClientCert(ca, { cn: 'old', notBefore: new Date(Date.now() - 30 * DAY), notAfter }).certPem);
  t.ok(new Date(expired.validTo) < new Date(), 'expired');
  t.equal(new Date(expired.validTo).getTime(), Math.floor(notAfter.getTime() / 1000) * 1000);
});

t.test('selfSignedCert: its own issuer, good for either end', async (t) => {
  const c = new X509Certificate(selfSignedCert({ cn: 'impostor', dnsNames: ['localhost'] }).certPem);
  t.equal(c.issuer, c.subject);
  t.ok(c.verify(c.publicKey));
  t.same(c.keyUsage?.sort(), [SERVER_AUTH, CLIENT_AUTH]);
});

const opts: DemoPkiOptions = { serverNames: ['localhost'], serverIps: ['127.0.0.1'], mtls: true, region: 'us-east-1' };

t.test('ensureDemoPki: every file, key files 0600, nothing left over', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'certs-devpki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = ensureDemoPki(dir, opts);
  t.same(readdirSync(dir).sort(), [
    'ca-key.pem', 'ca.pem', 'client-ca-key.pem', 'client-ca.pem', 'client-key.pem', 'client.pem',
    'server-chain.pem', 'server-key.pem', 'wrong-client-key.pem', 'wrong-client.pem',
  ]);
  for (const name of readdirSync(dir)) {
    t.equal(statSync(join(dir, name)).mode & 0o777, name.includes('key') ? 0o600 : 0o644, name);
  }
  for (const p of [f.caFile, f.caKeyFile, f.serverChainFile, f.serverKeyFile, f.client!.certFile]) t.ok(isAbsolute(p));

  const chain = readFileSync(f.serverChainFile, 'utf8');
  t.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 1, 'the served chain omits the root');
  const report = checkServerCertificate({ chainPem: chain, keyPem: readFileSync(f.serverKeyFile, 'utf8'), hostname: 'localhost', trustedRoots: [readFileSync(f.caFile, 'utf8')] });
  t.same(report.problems, [], 'the demo server certificate passes the checks against the demo CA');
  t.same(report.sans, ['DNS:localhost', 'IP Address:127.0.0.1']);

  const clientCa = new X509Certificate(readFileSync(f.client!.caFile));
  const client = new X509Certificate(readFileSync(f.client!.certFile));
  const wrong = new X509Certificate(readFileSync(f.client!.wrongCertFile));
  t.equal(client.subject, 'CN=cks.kms.us-east-1.amazonaws.com');
  t.equal(f.client!.subject, 'cks.kms.us-east-1.amazonaws.com');
  t.not(wrong.subject, client.subject);
  t.equal(wrong.subject, `CN=${f.client!.wrongSubject}`);
  t.ok(client.checkIssued(clientCa) && wrong.checkIssued(clientCa), 'both under the client CA');
  t.notOk(client.checkIssued(new X509Certificate(readFileSync(f.caFile))), 'the client CA is not the server CA');
});

t.test('ensureDemoPki: reuses what is there, remakes only what is missing or unfit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'certs-devpki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');

  const first = ensureDemoPki(dir, { ...opts, mtls: false });
  t.equal(first.client, undefined);
  t.same(readdirSync(dir).sort(), ['ca-key.pem', 'ca.pem', 'server-chain.pem', 'server-key.pem']);
  const caPem = read('ca.pem');
  const serverPem = read('server-chain.pem');

  ensureDemoPki(dir, { ...opts, mtls: false });
  t.equal(read('ca.pem'), caPem, 'second run: same CA');
  t.equal(read('server-chain.pem'), serverPem, 'second run: same server certificate');

  ensureDemoPki(dir, opts);
  t.equal(read('ca.pem'), caPem, 'turning on mTLS keeps the CA');
  t.ok(read('client.pem') && read('wrong-client.pem'));
  const clientPem = read('client.pem');

  unlinkSync(join(dir, 'server-key.pem'));
  ensureDemoPki(dir, opts);
  t.not(read('server-chain.pem'), serverPem, 'a lost key means a new server certificate');
  t.equal(read('ca.pem'), caPem);
  t.equal(read('client.pem'), clientPem);

  const before = read('server-chain.pem');
  ensureDemoPki(dir, { ...opts, serverNames: ['localhost', 'xks.local'] });
  t.not(read('server-chain.pem'), before, 'a new name means a new server certificate');
  t.match(new X509Certificate(read('server-chain.pem')).subjectAltName, /DNS:xks\.local/);

  ensureDemoPki(dir, { ...opts, region: 'eu-west-1' });
  t.equal(new X509Certificate(read('client.pem')).subject, 'CN=cks.kms.eu-west-1.amazonaws.com', 'another region, another KMS client name');

  chmodSync(join(dir, 'ca-key.pem'), 0o644);
  ensureDemoPki(dir, { ...opts, region: 'eu-west-1' });
  t.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600, 'a loosened key file is tightened again');

  rmSync(join(dir, 'ca.pem'));
  ensureDemoPki(dir, opts);
  t.not(read('ca.pem'), caPem, 'a new CA when the old one is gone');
  t.ok(new X509Certificate(read('server-chain.pem')).checkIssued(new X509Certificate(read('ca.pem'))), 'and the server certificate follows it');
});

t.test('ensureDemoPki refuses options it cannot honour', async (t) => {
  t.throws(() => ensureDemoPki(join(tmpdir(), 'never-made'), { ...opts, serverNames: [] }), /serverNames/);
  t.throws(() => ensureDemoPki(join(tmpdir(), 'never-made'), { ...opts, region: 'US East' }), /region/);
});
