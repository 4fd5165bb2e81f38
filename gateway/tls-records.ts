// A streaming reader of the client-to-server bytes of a TLS 1.2 handshake, just far enough to
// find the client's Certificate message while it still travels in plaintext. It never holds
// the stream's bytes: it only remembers record and message headers it is in the middle of and
// the Certificate message itself (which must be whole to be judged). Nothing here decrypts or
// answers anything; the TLS engine behind still does all of that.

export const CONTENT_CHANGE_CIPHER_SPEC = 20;
export const CONTENT_ALERT = 21;
export const CONTENT_HANDSHAKE = 22;

export const HANDSHAKE_CLIENT_HELLO = 1;
export const HANDSHAKE_CERTIFICATE = 11;

/** A TLSPlaintext fragment is at most 2^14 bytes (RFC 5246 §6.2.1). */
export const MAX_PLAINTEXT_RECORD = 1 << 14;
/** OpenSSL's own caps (CLIENT_HELLO_MAX_LENGTH, SSL_MAX_CERT_LIST_DEFAULT): it would refuse
 *  anything larger, so refusing it here changes nothing but the alert. */
export const MAX_CLIENT_HELLO = 131_396;
export const MAX_CERTIFICATE_MESSAGE = 100 * 1024;

/** The fatal handshake_failure(40) alert as a plaintext TLS 1.2 record. */
export const HANDSHAKE_FAILURE_ALERT = Buffer.from([CONTENT_ALERT, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);

/** What to do with the chunk just fed (as a whole) and with what follows it. */
export type Verdict =
  /** Forward the chunk; keep feeding. */
  | { kind: 'inspect' }
  /** Forward the chunk and everything after it unseen: the Certificate was accepted, or the
   *  client's ChangeCipherSpec passed (an abbreviated handshake has no Certificate). */
  | { kind: 'pass' }
  /** Forward nothing more: the Certificate was refused, or the bytes are not a TLS handshake. */
  | { kind: 'reject'; reason: string };

/** Judges the client's chain (DER, leaf first; never empty): a reason to refuse it, or null. */
export type ChainJudge = (chain: Buffer[]) => string | null;

const INSPECT: Verdict = { kind: 'inspect' };
const PASS: Verdict = { kind: 'pass' };
const reject = (reason: string): Verdict => ({ kind: 'reject', reason });

/**
 * Fed the client's bytes in arrival order, in chunks of any size (one byte at a time works).
 * Expects ClientHello then Certificate: the server always sends CertificateRequest when this
 * runs, so in a full TLS 1.2 handshake the client's next message must be its Certificate (an
 * empty one if it has none). After a verdict other than 'inspect' it must not be fed again.
 */
export class ClientCertificateReader {
  // Record layer: header bytes collected so far, then the body bytes still to come.
  private readonly recordHeader = Buffer.alloc(5);
  private recordHeaderUsed = 0;
  private recordLeft = 0;
  // Handshake layer: the same for the message header; messages may span records.
  private readonly messageHeader = Buffer.alloc(4);
  private messageHeaderUsed = 0;
  private messageType = -1;
  private messageLeft = 0;
  private messagesSeen = 0;
  // The Certificate message body, copied piece by piece as it arrives (grows with what the
  // client really sent, never with what it claims it will send).
  private certificateParts: Buffer[] = [];

  constructor(private readonly judge: ChainJudge) {}

  feed(chunk: Buffer): Verdict {
    let at = 0;
    while (at < chunk.length) {
      if (this.recordLeft === 0) {
        const take = Math.min(5 - this.recordHeaderUsed, chunk.length - at);
        chunk.copy(this.recordHeader, this.recordHeaderUsed, at, at + take);
        this.recordHeaderUsed += take;
        at += take;
        if (this.recordHeaderUsed < 5) break;
        this.recordHeaderUsed = 0;
        const verdict = this.startRecord();
        if (verdict !== INSPECT) return verdict;
        continue;
      }
      const take = Math.min(this.recordLeft, chunk.length - at);
      this.recordLeft -= take;
      if (this.recordHeader[0] === CONTENT_HANDSHAKE) {
        const verdict = this.handshakeBytes(chunk, at, at + take);
        if (verdict !== INSPECT) return verdict;
      }
      at += take;
    }
    return INSPECT;
  }

  private startRecord(): Verdict {
    const h = this.recordHeader;
    const type = h[0]!;
    const length = h.readUInt16BE(3);
    if (h[1] !== 3 || h[2]! > 4) return reject(`not a TLS record (version bytes ${h[1]}.${h[2]})`);
    if (type === CONTENT_CHANGE_CIPHER_SPEC) {
      // A handshake message cut off by a ChangeCipherSpec is a protocol violation.
      return this.messageLeft === 0 && this.messageHeaderUsed === 0 ? PASS : reject('ChangeCipherSpec inside a handshake message');
    }
    if (type !== CONTENT_HANDSHAKE && type !== CONTENT_ALERT) return reject(`record type ${type} before the client certificate`);
    if (length === 0 || length > MAX_PLAINTEXT_RECORD) return reject(`record length ${length}`);
    this.recordLeft = length;
    return INSPECT;
  }

  private handshakeBytes(chunk: Buffer, from: number, to: number): Verdict {
    let at = from;
    while (at < to) {
      if (this.messageType === -1) {
        const take = Math.min(4 - this.messageHeaderUsed, to - at);
        chunk.copy(this.messageHeader, this.messageHeaderUsed, at, at + take);
        this.messageHeaderUsed += take;
        at += take;
        if (this.messageHeaderUsed < 4) break;
        this.messageHeaderUsed = 0;
        const verdict = this.startMessage();
        if (verdict !== INSPECT) return verdict;
        continue;
      }
      const take = Math.min(this.messageLeft, to - at);
      if (this.messageType === HANDSHAKE_CERTIFICATE) this.certificateParts.push(Buffer.from(chunk.subarray(at, at + take)));
      this.messageLeft -= take;
      at += take;
      if (this.messageLeft === 0) {
        const verdict = this.endMessage();
        if (verdict !== INSPECT) return verdict;
      }
    }
    return INSPECT;
  }

  private startMessage(): Verdict {
    const type = this.messageHeader[0]!;
    const length = this.messageHeader.readUIntBE(1, 3);
    const expected = this.messagesSeen === 0 ? HANDSHAKE_CLIENT_HELLO : HANDSHAKE_CERTIFICATE;
    if (type !== expected) {
      return reject(expected === HANDSHAKE_CERTIFICATE ? `handshake message ${type} instead of the client Certificate` : `handshake message ${type} instead of ClientHello`);
    }
    const max = type === HANDSHAKE_CERTIFICATE ? MAX_CERTIFICATE_MESSAGE : MAX_CLIENT_HELLO;
    if (length > max) return reject(`handshake message ${type} of ${length} bytes`);
    this.messageType = type;
    this.messageLeft = length;
    return length === 0 ? this.endMessage() : INSPECT;
  }

  private endMessage(): Verdict {
    const type = this.messageType;
    this.messageType = -1;
    this.messagesSeen++;
    if (type !== HANDSHAKE_CERTIFICATE) return INSPECT;
    const body = Buffer.concat(this.certificateParts);
    this.certificateParts = [];
    const chain = parseCertificateList(body);
    if (typeof chain === 'string') return reject(chain);
    if (chain.length === 0) return reject('no client certificate');
    const refused = this.judge(chain);
    return refused === null ? PASS : reject(refused);
  }
}

/** RFC 5246 §7.4.2: certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>. A reason if malformed. */
export function parseCertificateList(body: Buffer): Buffer[] | string {
  if (body.length < 3) return 'Certificate message shorter than its list length';
  const listLength = body.readUIntBE(0, 3);
  if (listLength !== body.length - 3) return 'Certificate list length does not match the message';
  const chain: Buffer[] = [];
  let at = 3;
  while (at < body.length) {
    if (body.length - at < 3) return 'truncated certificate length';
    const length = body.readUIntBE(at, 3);
    at += 3;
    if (length === 0 || length > body.length - at) return 'certificate entry length out of bounds';
    chain.push(body.subarray(at, at + length));
    at += length;
  }
  return chain;
}
