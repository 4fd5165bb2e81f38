// The demo's development PKI on disk: a dev CA and a server certificate for localhost, and for
// mTLS a client CA with KMS's client certificate and a wrong one. Made on the first run, reused
// on the next (so clients that trust ca.pem keep working), remade only when unusable.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from './atomic-write.js';
import { createCa, issueClientCert, issueServerCert, type CertAndKey } from './issue.js';
import { commonName, issuedBy, isSelfSigned, notAfter } from '../../gateway/x509.js';

export * from './issue.js';

export interface DemoPkiOptions {
  /** DNS names for the server certificate's SAN; the first is its CN. E.g. ['localhost']. */
  serverNames: string[];
  /** IP addresses for the SAN. E.g. ['127.0.0.1']. */
  serverIps: string[];
  mtls: boolean;
  /** KMS presents CN=cks.kms.<region>.amazonaws.com as its client certificate. */
  region: string;
}

/** Absolute paths. Every key file is mode 0600. */
export interface DemoPkiFiles {
  caFile: string;
  caKeyFile: string;
  /** Only the server certificate: the dev CA is the root, and a served chain omits its root
   *  (RFC 8446 §4.4.2); clients must hold it already (caFile), so sending it would only cost
   *  bytes on every handshake. A real chain file holds the leaf, then each intermediate. */
  serverChainFile: string;
  serverKeyFile: string;
  /** Present with `mtls`. */
  client?: {
    caFile: string;
    caKeyFile: string;
    /** CN = `subject` = cks.kms.<region>.amazonaws.com. */
    certFile: string;
    keyFile: string;
    subject: string;
    /** Same client CA, another CN: the gateway must refuse it. */
    wrongCertFile: string;
    wrongKeyFile: string;
    wrongSubject: string;
  };
}

const DAY_MS = 86_400_000;
/** Remake a certificate that expires sooner than this, so a long-lived demo dir keeps working. */
const RENEW_BEFORE_MS = 30 * DAY_MS;

const isRoot = (c: X509Certificate) => c.ca && isSelfSigned(c);

export function ensureDemoPki(dir: string, opts: DemoPkiOptions): DemoPkiFiles {
  if (opts.serverNames.length === 0) throw new Error('ensureDemoPki: serverNames needs at least one DNS name');
  if (!/^[a-z0-9-]+$/.test(opts.region)) throw new Error(`ensureDemoPki: region "${opts.region}" is not an AWS region name`);
  const root = resolve(dir);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const at = (name: string) => join(root, name);

  const caFile = at('ca.pem');
  const caKeyFile = at('ca-key.pem');
  const ca = ensurePair(caFile, caKeyFile, isRoot, () => createCa('XKS Appliance Demo CA'));
  const caCert = new X509Certificate(ca.certPem);

  const serverChainFile = at('server-chain.pem');
  const serverKeyFile = at('server-key.pem');
  ensurePair(
    serverChainFile,
    serverKeyFile,
    (c) =>
      issuedBy(c, caCert) &&
      opts.serverNames.every((n) => c.checkHost(n, { subject: 'never' }) !== undefined) &&
      opts.serverIps.every((ip) => c.checkIP(ip) !== undefined),
    () => issueServerCert(ca, { dnsNames: opts.serverNames, ipAddresses: opts.serverIps }),
  );
  const files: DemoPkiFiles = { caFile, caKeyFile, serverChainFile, serverKeyFile };
  if (!opts.mtls) return files;

  const clientCa = ensurePair(at('client-ca.pem'), at('client-ca-key.pem'), isRoot, () => createCa('XKS Appliance Demo Client CA'));
  const clientCaCert = new X509Certificate(clientCa.certPem);
  const ensureClient = (certFile: string, keyFile: string, cn: string) =>
    ensurePair(at(certFile), at(keyFile), (c) => issuedBy(c, clientCaCert) && commonName(c) === cn, () => issueClientCert(clientCa, { cn }));
  const subject = `cks.kms.${opts.region}.amazonaws.com`;
  const wrongSubject = 'not-kms.xks-demo.invalid';
  ensureClient('client.pem', 'client-key.pem', subject);
  ensureClient('wrong-client.pem', 'wrong-client-key.pem', wrongSubject);
  files.client = {
    caFile: at('client-ca.pem'),
    caKeyFile: at('client-ca-key.pem'),
    certFile: at('client.pem'),
    keyFile: at('client-key.pem'),
    subject,
    wrongCertFile: at('wrong-client.pem'),
    wrongKeyFile: at('wrong-client-key.pem'),
    wrongSubject,
  };
  return files;
}

/** The pair on disk if it is whole, matching, `fits` and not about to expire; else a new one.
 *  The key is written first: a crash in between leaves a mismatched pair, remade next time. */
function ensurePair(certFile: string, keyFile: string, fits: (c: X509Certificate) => boolean, make: () => CertAndKey): CertAndKey {
  const existing = readPair(certFile, keyFile);
  if (existing && fits(existing.cert) && notAfter(existing.cert).getTime() - Date.now() > RENEW_BEFORE_MS) {
    if ((statSync(keyFile).mode & 0o077) !== 0) chmodSync(keyFile, 0o600);
    return existing.pair;
  }
  const pair = make();
  writeFileAtomic(keyFile, pair.keyPem, 0o600);
  writeFileAtomic(certFile, pair.certPem, 0o644);
  return pair;
}

function readPair(certFile: string, keyFile: string): { pair: CertAndKey; cert: X509Certificate } | undefined {
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  try {
    const pair = { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
    const cert = new X509Certificate(pair.certPem);
    return cert.checkPrivateKey(createPrivateKey(pair.keyPem)) ? { pair, cert } : undefined;
  } catch {
    return undefined; // unreadable or corrupt: remake it
  }
}
