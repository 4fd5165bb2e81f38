// Which root a served chain ends at, and whether KMS trusts it.
//
// The rule. KMS's list (kms-roots.ts) names roots by SHA-256 fingerprint only, so the root has to
// be a certificate we hold before its fingerprint can be taken; an issuer *name* proves nothing.
// For the last certificate of the chain file:
//   1. self-signed: it is the root itself;
//   2. otherwise the root is a certificate that verifiably issued it (names match and its key
//      verifies the signature), looked up among the caller's extra roots and the Mozilla root
//      store built into Node (tls.rootCertificates, which holds most of KMS's list: 102 of 130);
//   3. none found: error. The fix is to append the root (and any missing intermediate) to the
//      chain file; TLS clients ignore a served root, so that costs only a few bytes.
// Then: an extra root is accepted as is (the caller vouches for it: the demo CA); any other root
// must be in KMS's list by fingerprint and not past its notAfter there. Of several candidates
// (cross-signed or re-issued roots share name and key) the best verdict wins.
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { findKmsRoot, kmsRootExpiry, kmsTrustedRoots, sha256Fingerprint, type KmsRoot } from './kms-roots.js';
import { issuedBy, isSelfSigned, oneLineName } from '../../gateway/x509.js';

export type Anchor =
  /** One of the caller's extra roots. */
  | { kind: 'extra'; root: X509Certificate }
  | { kind: 'kms'; root: X509Certificate; kmsRoot: KmsRoot; expired: boolean }
  | { kind: 'untrusted'; root: X509Certificate }
  /** No certificate at hand issued the top of the chain. `kmsNamesake` is a KMS root with the
   *  issuer's name, for the hint only. */
  | { kind: 'unknown'; issuer: string; kmsNamesake?: KmsRoot };

let nodeStore: X509Certificate[] | undefined;

function nodeRootStore(): X509Certificate[] {
  nodeStore ??= rootCertificates.map((pem) => new X509Certificate(pem));
  return nodeStore;
}

/** Where the chain whose last certificate is `top` ends; `extraRoots` are accepted as is. */
export function findAnchor(top: X509Certificate, extraRoots: X509Certificate[], now: Date): Anchor {
  const extraPrints = new Set(extraRoots.map(sha256Fingerprint));
  const candidates = isSelfSigned(top) ? [top] : [...extraRoots, ...nodeRootStore()].filter((c) => issuedBy(top, c));
  const anchors = candidates.map((root): Anchor => {
    if (extraPrints.has(sha256Fingerprint(root))) return { kind: 'extra', root };
    const kmsRoot = findKmsRoot(root);
    if (!kmsRoot) return { kind: 'untrusted', root };
    return { kind: 'kms', root, kmsRoot, expired: kmsRootExpiry(kmsRoot) <= now };
  });
  const rank = (a: Anchor) => (a.kind === 'extra' ? 0 : a.kind === 'kms' ? (a.expired ? 2 : 1) : 3);
  const best = anchors.sort((a, b) => rank(a) - rank(b))[0];
  if (best) return best;
  const issuer = oneLineName(top.issuer);
  return { kind: 'unknown', issuer, kmsNamesake: kmsRootNamed(top.issuer) };
}

/** A KMS root whose keytool-style subject lists the same attributes as Node's issuer name. */
function kmsRootNamed(nodeName: string): KmsRoot | undefined {
  const key = (attrs: string[]) => attrs.map((a) => a.trim()).sort().join('\n');
  const wanted = key(nodeName.split('\n'));
  return [...kmsTrustedRoots().values()].find((r) => key(r.subject.split(/,(?=\s*[A-Za-z0-9.]+=)/)) === wanted);
}
