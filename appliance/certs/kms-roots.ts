// KMS's TrustedCertificateAuthorities (spec S10), as the project's own copy of the list.
// The list carries no certificates, only names and SHA-256 fingerprints, so a root is recognised
// by the fingerprint of its DER encoding, never by its name: anyone can make a CA called
// "ISRG Root X1", and re-issued roots (e.g. GTS Root R1-R4) keep the name but change the bytes.
import { createHash, type X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../xks/hsm/package-root.js';

export interface KmsRoot {
  alias: string;
  /** keytool-style name, e.g. "CN=ISRG Root X1, O=Internet Security Research Group, C=US". */
  subject: string;
  /** YYYY-MM-DD. */
  notAfter: string;
  /** SHA-256 of the root's DER, lowercase hex without colons. */
  sha256: string;
}

const LIST = join('appliance', 'certs', 'kms-trusted-roots.json');


let cache: ReadonlyMap<string, KmsRoot> | undefined;

/** Every KMS root keyed by its SHA-256 fingerprint; the file is checked once, on first use. */
export function kmsTrustedRoots(): ReadonlyMap<string, KmsRoot> {
  if (cache) return cache;
  // Read from the source tree, so the same path serves appliance/certs/ (tests) and dist/ (built).
  const file = join(packageRoot(), LIST);
  if (!existsSync(file)) throw new Error(`${file} not found: the package is incomplete`);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { count?: unknown; roots?: unknown };
  if (!Array.isArray(doc.roots) || doc.roots.length !== doc.count) throw new Error(`${file}: "roots" must hold "count" entries`);
  const roots = new Map<string, KmsRoot>();
  for (const r of doc.roots as KmsRoot[]) {
    if (!/^[0-9a-f]{64}$/.test(r.sha256) || !/^\d{4}-\d{2}-\d{2}$/.test(r.notAfter)) {
      throw new Error(`${file}: root "${r.alias}" needs a lowercase hex sha256 and a YYYY-MM-DD notAfter`);
    }
    roots.set(r.sha256, r);
  }
  cache = roots;
  return roots;
}

/** SHA-256 of the certificate's DER in the list's format (lowercase hex, no colons). */
export function sha256Fingerprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex');
}

/** The KMS root this certificate is, if any. */
export function findKmsRoot(cert: X509Certificate): KmsRoot | undefined {
  return kmsTrustedRoots().get(sha256Fingerprint(cert));
}

/** End of a root's validity: the whole last day counts, as keytool prints only the date. */
export function kmsRootExpiry(root: KmsRoot): Date {
  return new Date(`${root.notAfter}T23:59:59Z`);
}
