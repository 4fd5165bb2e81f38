// TLS settings for the API listener (spec T3, S9): TLS 1.2 and 1.3, AEAD suites with forward
// secrecy only (the spec's four are included), the operator's full chain, optional client auth.
import { X509Certificate, constants, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TlsOptions, TLSSocket } from 'node:tls';
import type { GatewayOptions, ServerTlsOptions } from './options.js';
import { pemCertificates } from './x509.js';

/** TLS 1.3 suites first, then TLS 1.2 ECDHE AEAD suites (NLB HTTPS health checks use TLS 1.2). */
export const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export function tlsOptions(tls: ServerTlsOptions): TlsOptions {
  const options: TlsOptions = {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    minVersion: tls.minVersion,
    ciphers: CIPHERS,
    honorCipherOrder: true,
    // Session tickets let KMS resume instead of paying a full handshake on reconnects.
    ticketKeys: randomBytes(48),
    ALPNProtocols: ['http/1.1'],
  };
  if (tls.clientAuth) {
    options.ca = readFileSync(tls.clientAuth.caFile);
    options.requestCert = true;
    options.rejectUnauthorized = true;
    if (tls.clientAuth.alertOnReject) {
      // The client-certificate gate reads the client's Certificate message, plaintext only up to
      // TLS 1.2; and it sees only the first handshake, so no renegotiation to another identity.
      options.maxVersion = 'TLSv1.2';
      options.secureOptions = constants.SSL_OP_NO_RENEGOTIATION;
    }
  }
  return options;
}

/** The trust anchors for the client-certificate gate: every certificate in the client CA file. */
export function clientCaCertificates(tls: ServerTlsOptions): X509Certificate[] {
  if (!tls.clientAuth) return [];
  return pemCertificates(readFileSync(tls.clientAuth.caFile, 'utf8')).map((pem) => new X509Certificate(pem));
}

/** KMS presents CN=cks.kms.<region>.amazonaws.com (S9); the operator may configure others. */
export function allowedClientSubjects(config: GatewayOptions): ReadonlySet<string> {
  const auth = config.server.tls.clientAuth;
  if (!auth) return new Set();
  const subjects = new Set(auth.subjects ?? config.proxy.regions.map((r) => `cks.kms.${r}.amazonaws.com`));
  // An empty list would let any certificate of the client CA through: refuse to start instead.
  if (subjects.size === 0) throw new Error('server.tls.clientAuth: no allowed client subject (set clientAuth.subjects, or proxy.regions for the KMS subjects)');
  return subjects;
}

/** The handshake verified the chain; the subject must also be one we were told to accept. */
export function clientSubjectAllowed(socket: TLSSocket, subjects: ReadonlySet<string>): boolean {
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' && subjects.has(cn);
}
