// TLS as KMS meets it (T3, T4, S9, S10): the served chain in the order it was sent, judged by the
// same certificate checks the appliance runs on its own chain (appliance/certs/check.ts); the
// protocol versions with KMS's cipher suites; with mTLS, that a missing or wrong client
// certificate is refused.
//
// The order of the chain is only visible on the wire: Node rebuilds the peer's chain by issuer
// links. Under TLS 1.2 the server's Certificate message travels in the clear, so the probe reads
// it from the bytes as they arrive (TLS 1.3 encrypts it).
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { checkServerCertificate, type CertReport } from '../certs/check.js';
import { Connection, contextOptions, requestMetadata, tlsOptions } from './client.js';
import { signRequest } from './signer.js';
import { allOf, describeError, fail, pass, skip, type Results, type Verdict } from './results.js';
import type { ProbeTarget } from './target.js';

const RECORD_HANDSHAKE = 22;
const RECORD_CHANGE_CIPHER_SPEC = 20;
const HANDSHAKE_CERTIFICATE = 11;
const MAX_CAPTURE = 256 * 1024;
const TLS12_KMS_SUITES = 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384';
const TLS13_KMS_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
const TIMEOUT_MS = 10_000;

/** Reads the server's plaintext TLS 1.2 handshake records until its Certificate message. */
class ServerCertificateReader {
  private bytes = Buffer.alloc(0);
  private handshake = Buffer.alloc(0);
  private done = false;
  chain: Buffer[] | undefined;

  feed(chunk: Buffer): void {
    if (this.done) return;
    this.bytes = Buffer.concat([this.bytes, chunk]);
    if (this.bytes.length > MAX_CAPTURE) this.done = true;
    while (!this.done && this.bytes.length >= 5) {
      const length = this.bytes.readUInt16BE(3);
      if (this.bytes.length < 5 + length) return;
      const type = this.bytes[0];
      const body = this.bytes.subarray(5, 5 + length);
      this.bytes = this.bytes.subarray(5 + length);
      if (type === RECORD_CHANGE_CIPHER_SPEC) this.done = true;
      else if (type === RECORD_HANDSHAKE) {
        this.handshake = Buffer.concat([this.handshake, body]);
        this.messages();
      }
    }
  }

  private messages(): void {
    let at = 0;
    while (at + 4 <= this.handshake.length) {
      const type = this.handshake[at]!;
      const length = this.handshake.readUIntBE(at + 1, 3);
      if (at + 4 + length > this.handshake.length) return;
      if (type === HANDSHAKE_CERTIFICATE) {
        this.chain = parseCertificateList(this.handshake.subarray(at + 4, at + 4 + length));
        this.done = true;
        return;
      }
      at += 4 + length;
    }
  }
}

/** TLS 1.2 Certificate body: u24 total, then u24-length-prefixed DER certificates, leaf first. */
function parseCertificateList(body: Buffer): Buffer[] {
  const certs: Buffer[] = [];
  let at = 3;
  while (at + 3 <= body.length) {
    const n = body.readUIntBE(at, 3);
    certs.push(body.subarray(at + 3, at + 3 + n));
    at += 3 + n;
  }
  return certs;
}

/** A TCP socket whose incoming bytes are shown to `onData` before TLS reads them. */
function tappedSocket(host: string, port: number, onData: (b: Buffer) => void): Duplex {
  const raw = net.connect(port, host);
  const tap = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      raw.write(chunk, cb);
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (b: Buffer) => {
    onData(b);
    tap.push(b);
  });
  raw.on('end', () => tap.push(null));
  raw.on('error', (err) => tap.destroy(err));
  return tap;
}

interface Handshake {
  ok: boolean;
  protocol?: string;
  cipher?: string;
  error?: string;
}

function handshake(opts: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ ...opts, rejectUnauthorized: false });
    const end = (h: Handshake) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(h);
    };
    const timer = setTimeout(() => end({ ok: false, error: 'timed out' }), TIMEOUT_MS);
    socket.once('secureConnect', () => end({ ok: true, protocol: socket.getProtocol() ?? '', cipher: socket.getCipher().standardName }));
    socket.once('error', (err) => end({ ok: false, error: describeError(err) }));
  });
}

export async function tlsChecks(target: ProbeTarget, results: Results): Promise<void> {
  // Versions and suites are context options: these handshakes get a context of their own.
  const { secureContext: _shared, ...base } = { ...tlsOptions(target, target.clientCert), ...contextOptions(target, target.clientCert) };
  const reader = new ServerCertificateReader();
  const tls12 = await handshake({ ...base, socket: tappedSocket(base.host!, base.port!, (b) => reader.feed(b)), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: TLS12_KMS_SUITES });
  const tls13 = await handshake({ ...base, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: TLS13_KMS_SUITES });

  // The spec asks for TLS 1.2 or later (T3): a version not offered is a FAIL only when neither is.
  const version = (h: Handshake, other: Handshake, suites: string) => (): Verdict => {
    if (h.ok) return pass(`${h.protocol} ${h.cipher}`);
    if (other.ok) return skip(`not offered (${h.error?.split(' ')[0]}); ${other.protocol} with a KMS suite is, which the spec allows`);
    return fail(`refused with ${suites}: ${h.error}`);
  };
  await results.check('tls', 'T3', 'TLS 1.2 with a KMS cipher suite', version(tls12, tls13, 'ECDHE-(RSA|ECDSA)-AES256-GCM-SHA384'));
  await results.check('tls', 'T3', 'TLS 1.3 with a KMS cipher suite', version(tls13, tls12, 'TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256'));

  const chain = reader.chain;
  const noChain = skip('the server certificate chain was not seen: it travels in the clear only under TLS 1.2');
  const host = target.endpoint.hostname;
  let withCa: CertReport | undefined;
  let kmsOnly: CertReport | undefined;
  if (chain?.length) {
    const chainPem = chain.map((der) => new X509Certificate(der).toString()).join('');
    withCa = checkServerCertificate({ chainPem, hostname: host, trustedRoots: target.caPem ? [target.caPem] : 'kms' });
    kmsOnly = target.caPem ? checkServerCertificate({ chainPem, hostname: host, trustedRoots: 'kms' }) : withCa;
  }
  const problems = (r: CertReport, codes: string[]) => r.problems.filter((p) => codes.includes(p.code));
  const verdictOf = (r: CertReport, errors: string[], warnings: string[], ok: string): Verdict => {
    const found = problems(r, [...errors, ...warnings]);
    const bad = found.filter((p) => p.severity === 'error');
    if (bad.length) return fail(bad.map((p) => p.message).join('; '));
    return pass([ok, ...found.map((p) => `warning: ${p.message}`)].join('; '));
  };

  await results.check('tls', 'T4', 'certificate chain complete and in order', () =>
    withCa
      ? verdictOf(withCa, ['PEM_NO_CERTIFICATE', 'PEM_INVALID', 'LEAF_IS_CA', 'LEAF_NOT_SERVER_AUTH', 'CHAIN_ORDER', 'CHAIN_BROKEN', 'ROOT_NOT_FOUND'], [], `${chain!.length} certificate(s), leaf first, each issued by the next`)
      : noChain,
  );
  await results.check('tls', 'T4', 'certificate names the endpoint host', () => {
    if (!withCa) return noChain;
    if (net.isIP(host)) return fail(`the endpoint is the IP address ${host}: KMS connects to a DNS name (FQDN)`);
    return verdictOf(withCa, ['HOSTNAME_NOT_IN_SAN'], ['CN_MISMATCH'], `SAN ${withCa.sans.join(', ')} covers ${host}`);
  });
  await results.check('tls', 'T4', 'certificates valid today, days to expiry', () =>
    withCa ? verdictOf(withCa, ['EXPIRED', 'NOT_YET_VALID'], ['EXPIRES_SOON'], `${withCa.daysToExpire} days to expiry (${withCa.notAfter.toISOString().slice(0, 10)})`) : noChain,
  );
  await results.check('tls', 'S10', "chain ends at one of KMS's trusted roots", () => {
    if (!withCa || !kmsOnly) return noChain;
    if (withCa.chainEndsAt === null && !problems(withCa, ['ROOT_NOT_FOUND']).length) return skip('the chain is broken (see T4), so where it ends is unknown');
    const rootCodes = ['ROOT_NOT_FOUND', 'ROOT_NOT_TRUSTED_BY_KMS', 'ROOT_EXPIRED'];
    if (!problems(kmsOnly, rootCodes).some((p) => p.severity === 'error')) return verdictOf(kmsOnly, [], ['ROOT_EXPIRES_SOON'], `ends at ${kmsOnly.chainEndsAt}`);
    if (target.caPem && !problems(withCa, rootCodes).length) {
      return skip(`ends at ${withCa.chainEndsAt ?? 'the --ca root'}, given with --ca and not one of KMS's roots: fine for a test endpoint; KMS itself would refuse it`);
    }
    return fail(problems(kmsOnly, rootCodes).map((p) => p.message).join('; '));
  });

  await results.check('tls', 'S9', 'mTLS: no client certificate is refused', async () => {
    if (!target.clientCert) return skip('no --client-cert given (the endpoint is probed without mTLS)');
    return refusedWithout(target, undefined, 'without a client certificate');
  });
  await results.check('tls', 'S9', 'mTLS: a wrong client certificate is refused', async () => {
    if (!target.wrongClientCert) return skip('no wrong client certificate given (--wrong-client-cert, --wrong-client-key)');
    return refusedWithout(target, target.wrongClientCert, 'with a wrong client certificate');
  });
}

/** S9: the handshake (or the connection right after it, under TLS 1.3) ends; no HTTP reply. */
async function refusedWithout(target: ProbeTarget, cert: ProbeTarget['clientCert'], label: string): Promise<Verdict> {
  const conn = new Connection(target, cert);
  try {
    const path = `${target.uriPath}/health`;
    const body = Buffer.from(JSON.stringify({ requestMetadata: requestMetadata(target, 'KmsHealthCheck') }));
    const headers = { 'content-type': 'application/json', ...signRequest({ method: 'POST', host: target.endpoint.host, path, body, accessKeyId: target.accessKeyId, secret: target.secret, region: target.region }) };
    const r = await conn.send({ path, body, headers });
    return fail(`${label}: the endpoint answered HTTP ${r.status}; it must end the TLS handshake`);
  } catch (err) {
    return allOf([], `${label}: connection refused (${describeError(err).slice(0, 80)})`);
  } finally {
    await conn.close().catch(() => {});
  }
}
