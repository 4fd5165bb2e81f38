// Checks the server certificate chain and key the way KMS will meet them. The caller decides what
// a problem means: production refuses to start on any error, the demo only warns.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { kmsRootExpiry } from './kms-roots.js';
import { findAnchor, type Anchor } from './trust.js';
import { commonName, issuedBy, isSelfSigned, notAfter, notBefore, oneLineName, pemCertificates, subjectAltNames } from '../../gateway/x509.js';

export interface CertProblem {
  severity: 'error' | 'warning';
  code: string;
  /** One line that names the fix. Never holds key material. */
  message: string;
}

export interface CertReport {
  /** No errors (warnings allowed). */
  ok: boolean;
  problems: CertProblem[];
  /** The earliest notAfter in the chain file (normally the leaf's): the day TLS to KMS breaks.
   *  An invalid Date when no certificate parses. */
  notAfter: Date;
  /** Whole days from `now` to notAfter; negative once expired, NaN when nothing parses. */
  daysToExpire: number;
  /** The leaf's subject on one line, e.g. "CN=xks.example.com". */
  subject: string;
  /** The leaf's SAN entries as Node prints them, e.g. "DNS:xks.example.com". */
  sans: string[];
  /** Subject of the root the chain ends at, when one was identified (trusted or not). */
  chainEndsAt: string | null;
  /** Who vouches for that root: 'kms' (KMS's list, the alias in `kmsRoot`), 'extra' (a root the
   *  caller named: the demo CA or a staging CA, which KMS does NOT accept), or 'none'. */
  anchoredBy: 'kms' | 'extra' | 'none';
  kmsRoot?: string;
}

export interface CheckServerCertificateOptions {
  /** PEM: the server certificate first, then each intermediate (the root may follow). */
  chainPem: string;
  /** The leaf's private key; absent: the key match is not checked (`xks cert check` without --key). */
  keyPem?: string;
  /** The name KMS connects to: the endpoint service's private DNS name or the public host.
   *  Absent: the SAN and CN are not checked (`xks cert check` without --host). */
  hostname?: string;
  now?: Date;
  /** Warn this many days before any certificate expires. Default 30. */
  warnDays?: number;
  /** 'kms' (default): only KMS's trusted roots. PEM strings: these roots are accepted too. */
  trustedRoots?: 'kms' | string[];
}

const DAY_MS = 86_400_000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_EKU = '2.5.29.37.0';

export function checkServerCertificate(opts: CheckServerCertificateOptions): CertReport {
  const now = opts.now ?? new Date();
  const warnMs = (opts.warnDays ?? 30) * DAY_MS;
  const problems: CertProblem[] = [];
  const error = (code: string, message: string) => problems.push({ severity: 'error', code, message });
  const warning = (code: string, message: string) => problems.push({ severity: 'warning', code, message });
  const report = (certs: X509Certificate[], chainEndsAt: string | null, anchor?: Anchor): CertReport => {
    const end = certs.length ? new Date(Math.min(...certs.map((c) => notAfter(c).getTime()))) : new Date(NaN);
    return {
      ok: !problems.some((p) => p.severity === 'error'),
      problems,
      notAfter: end,
      daysToExpire: Math.floor((end.getTime() - now.getTime()) / DAY_MS),
      subject: certs[0] ? oneLineName(certs[0].subject) : '',
      sans: certs[0] ? subjectAltNames(certs[0]) : [],
      chainEndsAt,
      anchoredBy: anchor?.kind === 'kms' ? 'kms' : anchor?.kind === 'extra' ? 'extra' : 'none',
      ...(anchor?.kind === 'kms' ? { kmsRoot: anchor.kmsRoot.alias } : {}),
    };
  };

  const certs = parseChain(opts.chainPem, error);
  if (!certs) return report([], null);
  const leaf = certs[0]!;
  const name = (i: number) => (i === 0 ? 'the server certificate' : `chain certificate #${i + 1} (${oneLineName(certs[i]!.subject)})`);

  checkLeaf(certs, error);
  if (opts.keyPem !== undefined) checkKey(leaf, opts.keyPem, error);
  if (opts.hostname !== undefined) checkHostname(leaf, opts.hostname, error, warning);

  certs.forEach((c, i) => {
    const from = notBefore(c);
    const to = notAfter(c);
    const until = to.toISOString().slice(0, 10);
    if (from > now) error('NOT_YET_VALID', `${name(i)} is valid only from ${from.toISOString()}: check the clock, or wait`);
    else if (to <= now) error('EXPIRED', `${name(i)} expired on ${until}: renew it and reload`);
    else if (to.getTime() - now.getTime() < warnMs) warning('EXPIRES_SOON', `${name(i)} expires on ${until}: renew it and reload before then`);
  });

  // Each certificate must be issued by the next one; otherwise the top of the file means nothing.
  const broken = certs.findIndex((c, i) => i + 1 < certs.length && !issuedBy(c, certs[i + 1]!));
  if (broken >= 0) {
    const misplaced = certs.some((c, a) => certs.some((p, b) => b !== a && b !== a + 1 && issuedBy(c, p)));
    if (misplaced) {
      error('CHAIN_ORDER', 'the chain file is out of order: put the server certificate first, then its issuer, then that one\'s issuer');
    } else {
      error('CHAIN_BROKEN', `${name(broken)} is not issued by the next certificate in the file: add its issuer "${oneLineName(certs[broken]!.issuer)}" right after it and remove unrelated certificates`);
    }
    return report(certs, null);
  }

  const extra = extraRoots(opts.trustedRoots, error);
  const anchor = findAnchor(certs.at(-1)!, extra, now);
  switch (anchor.kind) {
    case 'unknown': {
      const hint = anchor.kmsNamesake ? ` (KMS lists a root named so, "${anchor.kmsNamesake.alias}", but it is matched by fingerprint, so the certificate is needed)` : '';
      error('ROOT_NOT_FOUND', `the last certificate in the file is issued by "${anchor.issuer}", which is neither in the file nor a known root: append the missing intermediates and the root certificate to the chain file${hint}`);
      return report(certs, null);
    }
    case 'untrusted':
      error(
        'ROOT_NOT_TRUSTED_BY_KMS',
        certs.length === 1 && anchor.root === leaf
          ? 'the certificate is self-signed, and KMS accepts only certificates issued under the roots it trusts (xks cert roots lists them): make a CSR with xks cert csr and have it signed by one of those CAs'
          : `the chain ends at "${oneLineName(anchor.root.subject)}", which is not among KMS's trusted roots (xks cert roots lists them): get the certificate from a CA that KMS trusts`,
      );
      break;
    case 'kms': {
      const until = anchor.kmsRoot.notAfter;
      if (anchor.expired) error('ROOT_EXPIRED', `the chain ends at KMS root "${anchor.kmsRoot.alias}", which expired on ${until}: get the certificate from a CA under a current root`);
      else if (kmsRootExpiry(anchor.kmsRoot).getTime() - now.getTime() < warnMs) warning('ROOT_EXPIRES_SOON', `the chain ends at KMS root "${anchor.kmsRoot.alias}", which expires on ${until}: move to a CA under a newer root`);
      break;
    }
    case 'extra':
      // A served root was checked with the chain; one held only by the caller is checked here.
      if (notAfter(anchor.root) <= now) error('ROOT_EXPIRED', `the root "${oneLineName(anchor.root.subject)}" expired on ${notAfter(anchor.root).toISOString().slice(0, 10)}: issue the chain from a current root`);
      break;
  }
  return report(certs, oneLineName(anchor.root.subject), anchor);
}

type Report = (code: string, message: string) => void;

function parseChain(pem: string, error: Report): X509Certificate[] | undefined {
  const blocks = pemCertificates(pem);
  if (blocks.length === 0) {
    error('PEM_NO_CERTIFICATE', 'the chain file holds no PEM certificate: give the server certificate, then each intermediate, as PEM');
    return undefined;
  }
  const certs: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block));
    } catch {
      error('PEM_INVALID', `certificate #${i + 1} in the chain file does not parse: export it again as PEM`);
      return undefined;
    }
  }
  return certs;
}

function checkLeaf(certs: X509Certificate[], error: Report): void {
  const leaf = certs[0]!;
  if (leaf.ca) {
    // Three different mistakes look alike here; only the first is about order.
    if (certs.some((c) => !c.ca)) error('LEAF_IS_CA', 'the first certificate in the file is a CA certificate: put the server certificate first');
    else if (certs.length === 1 && isSelfSigned(leaf)) {
      error(
        'LEAF_IS_CA',
        'the certificate is a self-signed CA certificate (basicConstraints CA:TRUE, what openssl req -x509 makes by default), not a server certificate, and KMS does not accept self-signed ones: make a CSR with xks cert csr and have it signed by a CA that KMS trusts (xks cert roots)',
      );
    } else error('LEAF_IS_CA', 'the file holds only CA certificates: the server certificate is missing; put it first, then its intermediates');
  }
  // Node names the extended key usage OIDs `keyUsage`; undefined means no EKU extension (any use).
  const eku = leaf.keyUsage;
  if (eku && !eku.includes(SERVER_AUTH) && !eku.includes(ANY_EKU)) {
    error('LEAF_NOT_SERVER_AUTH', 'the server certificate is not for TLS servers (no serverAuth extended key usage): reissue it as a server certificate');
  }
}

function checkKey(leaf: X509Certificate, keyPem: string, error: Report): void {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    error('KEY_INVALID', 'the private key does not parse: give the unencrypted PEM key (PKCS#8 or PKCS#1), mode 0600');
    return;
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(key);
  } catch {
    // a key of another type (EC vs RSA) throws on some OpenSSL builds: a mismatch all the same
  }
  if (!matches) error('KEY_MISMATCH', 'the private key does not belong to the server certificate: give the key the certificate was issued for');
}

function checkHostname(leaf: X509Certificate, hostname: string, error: Report, warning: Report): void {
  if (isIP(hostname)) {
    if (leaf.checkIP(hostname) === undefined) error('HOSTNAME_NOT_IN_SAN', `the server certificate's SAN lacks IP ${hostname}: reissue it with that IP address in the SAN`);
    return;
  }
  if (leaf.checkHost(hostname, { subject: 'never' }) === undefined) {
    error('HOSTNAME_NOT_IN_SAN', `the server certificate's SAN lacks "${hostname}" (KMS checks the SAN): reissue it with DNS:${hostname} in the SAN`);
  }
  const cn = commonName(leaf);
  if (!cn || !nameMatches(cn, hostname)) {
    warning('CN_MISMATCH', `the server certificate's CN is "${cn ?? ''}", not "${hostname}": reissue it with CN=${hostname} as KMS asks for the name in both CN and SAN`);
  }
}

/** RFC 6125 matching for the CN: exact, or a wildcard for the whole leftmost label. */
function nameMatches(pattern: string, hostname: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = hostname.toLowerCase().replace(/\.$/, '');
  if (p === h) return true;
  const dot = h.indexOf('.');
  return p.startsWith('*.') && dot > 0 && p.slice(2) === h.slice(dot + 1) && p.slice(2).includes('.');
}

function extraRoots(trusted: CheckServerCertificateOptions['trustedRoots'], error: Report): X509Certificate[] {
  if (trusted === undefined || trusted === 'kms') return [];
  const roots: X509Certificate[] = [];
  for (const pem of trusted) {
    try {
      const blocks = pemCertificates(pem);
      if (blocks.length === 0) throw new Error('no certificate');
      roots.push(...blocks.map((b) => new X509Certificate(b)));
    } catch {
      error('TRUSTED_ROOT_INVALID', 'an extra trusted root does not parse: give it as a PEM certificate');
    }
  }
  return roots;
}
