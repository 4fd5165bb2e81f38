// Refuse a bad client certificate DURING the TLS handshake, with a fatal handshake_failure alert.
//
// Node verifies client certificates only after the handshake (its OpenSSL verify callback always
// accepts; nodejs/node#20737) and then just drops the socket, so a refused client never learns
// why; AWS's XKS test client expects "TLS alert, handshake failure". The gate sits between the
// TCP socket and Node's TLS server and reads the client's TLS 1.2 flight, in which the
// Certificate message is still plaintext (the listener caps mTLS listeners at TLS 1.2 for this).
// A chain it refuses never reaches the TLS engine: the gate writes the alert itself and closes.
// Node's own verification still runs on everything the gate lets through.
import { AsyncResource } from 'node:async_hooks';
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { issuedBy, notAfter, notBefore } from './x509.js';
import { ClientCertificateReader, HANDSHAKE_FAILURE_ALERT, type Verdict } from './tls-records.js';

export interface ClientCertGateOptions {
  /** Trust anchors: the configured client CA certificates. */
  caCerts: readonly X509Certificate[];
  /** Allowed leaf common names; empty: none (client auth never accepts any subject of the CA). */
  subjects: ReadonlySet<string>;
  now?: () => Date;
  /** Called once for a refused client, with a reason for the log (no secrets in it). */
  onReject(reason: string): void;
}

/** The client's chain: leaf plus intermediates; more is not a KMS client. */
export const MAX_CHAIN_LENGTH = 10;
/** After the alert, how long to wait for the client to close before dropping the connection. */
const LINGER_MS = 2000;
/** The TLS Web Client Authentication and any-purpose extended key usages. */
const CLIENT_AUTH_USAGES = ['1.3.6.1.5.5.7.3.2', '2.5.29.37.0'];

/**
 * Why the chain (DER, leaf first) is refused, or null to let it through: the leaf must be inside
 * its validity period, chain through certificates of `chain` to one of `caCerts` (each of them
 * valid too), carry an allowed CN and be usable for client auth. Checked in that order, so the
 * reason logged for an impostor is its issuer, not the name it claims.
 */
export function judgeClientChain(chain: readonly Buffer[], opts: Pick<ClientCertGateOptions, 'caCerts' | 'subjects' | 'now'>): string | null {
  if (chain.length === 0) return 'no client certificate';
  if (chain.length > MAX_CHAIN_LENGTH) return `chain of ${chain.length} certificates`;
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch {
    return 'unparsable certificate';
  }
  const now = (opts.now ?? (() => new Date()))().getTime();
  const current = (c: X509Certificate) => notBefore(c).getTime() <= now && now <= notAfter(c).getTime();
  const leaf = certs[0]!;
  if (!current(leaf)) return 'certificate expired or not yet valid';
  const untrusted = trustPath(leaf, certs.slice(1), opts.caCerts, current);
  if (untrusted !== null) return untrusted;
  const cns = leaf.subject.split('\n').filter((line) => line.startsWith('CN='));
  const cn = cns.length === 1 ? cns[0]!.slice(3) : undefined;
  if (cn === undefined || !opts.subjects.has(cn)) return `subject CN ${JSON.stringify(cn ?? null)} not allowed`;
  if (leaf.keyUsage && !leaf.keyUsage.some((u) => CLIENT_AUTH_USAGES.includes(u))) return 'certificate not for client authentication';
  return null;
}

/** Walks up from the leaf: each step reaches a trust anchor or uses up one intermediate. */
function trustPath(leaf: X509Certificate, intermediates: X509Certificate[], anchors: readonly X509Certificate[], current: (c: X509Certificate) => boolean): string | null {
  let child = leaf;
  for (;;) {
    const anchor = anchors.find((ca) => issuedBy(child, ca));
    if (anchor) return current(anchor) ? null : 'client CA certificate expired or not yet valid';
    const i = intermediates.findIndex((c) => c.ca && issuedBy(child, c));
    if (i < 0) return 'certificate not issued by a trusted client CA';
    child = intermediates.splice(i, 1)[0]!;
    if (!current(child)) return 'intermediate certificate expired or not yet valid';
  }
}

/**
 * Wraps an accepted TCP socket for `tlsServer.emit('connection', gate)`. Reads through the stream
 * API, so a socket handed back paused with bytes unshifted (readProxyHeader, startsWithTls)
 * works too. Until the verdict it inspects each chunk before passing it on; then it is a plain
 * pass-through with the socket's own backpressure in both directions.
 *
 * Call it inside the connection's async context (AsyncLocalStorage.run): the TLS engine then
 * runs from the gate's socket events, which keep that context, so stores reach TLS errors and
 * the request handler alike.
 */
export function gateClientCertificate(socket: Socket, opts: ClientCertGateOptions): Duplex {
  return new ClientCertGate(socket, opts);
}

class ClientCertGate extends Duplex {
  private reader: ClientCertificateReader | null;
  private refused = false;

  constructor(
    private readonly socket: Socket,
    private readonly opts: ClientCertGateOptions,
  ) {
    // Half-open is the TLS layer's call (close_notify may still go out after the client's FIN).
    super({ allowHalfOpen: true });
    this.reader = new ClientCertificateReader((chain) => judgeClientChain(chain, opts));
    // TLS now runs from these events, not from the socket's handle: keep the caller's context.
    const context = new AsyncResource('ClientCertGate');
    socket.pause(); // flow only when the TLS side reads (_read)
    socket.on('data', context.bind((chunk: Buffer) => this.onData(chunk)));
    socket.on('end', context.bind(() => this.onEnd()));
    socket.on('error', context.bind((err: Error) => this.destroy(err)));
    socket.on('close', context.bind(() => this.destroy()));
  }

  private onData(chunk: Buffer): void {
    if (this.refused) return;
    if (this.reader !== null) {
      let verdict: Verdict;
      try {
        verdict = this.reader.feed(chunk);
      } catch {
        verdict = { kind: 'reject', reason: 'unreadable handshake' }; // never let a parser bug pass bytes
      }
      if (verdict.kind === 'reject') return this.refuse(verdict.reason);
      if (verdict.kind === 'pass') this.reader = null;
    }
    if (!this.push(chunk)) this.socket.pause();
  }

  private onEnd(): void {
    if (!this.refused) this.push(null);
  }

  /** Alert in plaintext, then FIN. Keep reading (and dropping) what the client still sends until
   *  it closes: closing with unread data would send a RST, which can cost the client the alert. */
  private refuse(reason: string): void {
    this.refused = true;
    this.reader = null;
    const socket = this.socket;
    socket.end(HANDSHAKE_FAILURE_ALERT);
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
    this.opts.onReject(reason);
    this.destroy(); // the TLS and HTTP layers above see a closed stream, never the rest
  }

  override _read(): void {
    if (!this.refused) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    // Completes when the socket has taken the bytes: the TLS engine writes no faster than TCP.
    this.socket.write(chunk, done);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    this.socket.cork();
    chunks.forEach(({ chunk }, i) => this.socket.write(chunk, i === chunks.length - 1 ? done : undefined));
    this.socket.uncork();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.socket.end(done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.refused) this.socket.destroy();
    done(err);
  }
}
