// Small helpers over Node's native X509Certificate shared by the checks and the demo PKI.
import { X509Certificate } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM file, in file order (other blocks are ignored). */
export function pemCertificates(pem: string): string[] {
  return pem.match(PEM_CERT) ?? [];
}

/** Node prints a name one attribute per line ("C=US\nO=…\nCN=…"); show it on one line. */
export function oneLineName(name: string): string {
  return name.split('\n').join(', ');
}

/** The subject's (last) common name, or undefined. */
export function commonName(cert: X509Certificate): string | undefined {
  const cns = cert.subject.split('\n').filter((l) => l.startsWith('CN='));
  return cns.at(-1)?.slice(3);
}

export function notBefore(cert: X509Certificate): Date {
  return new Date(cert.validFrom);
}

export function notAfter(cert: X509Certificate): Date {
  return new Date(cert.validTo);
}

/** True when `parent` issued `child`: names match and parent's key verifies child's signature. */
export function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/** Its own issuer, signed with its own key: a root, or a self-signed leaf (which checkIssued
 *  would refuse for lack of the keyCertSign usage). */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

/** The SAN entries as Node prints them, e.g. ["DNS:localhost", "IP Address:127.0.0.1"]. */
export function subjectAltNames(cert: X509Certificate): string[] {
  // Node quotes entries that contain ", " (CVE-2021-44532), so splitting outside quotes is safe.
  return cert.subjectAltName?.match(/(?:[^,"]|"(?:\\.|[^"\\])*")+/g)?.map((s) => s.trim()) ?? [];
}
