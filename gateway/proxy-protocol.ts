/**
 * PROXY protocol v1 and v2 (haproxy.org proxy-protocol.txt), receiver side: a strict parser and
 * the reader that takes the first header off an accepted socket before TLS begins.
 *
 * Strict on purpose: the header decides which source address the allowlist sees, so anything
 * ambiguous (trailing bytes in the TLV area, two VPC endpoint ids, a CRC field of the wrong size)
 * is rejected instead of guessed at.
 */
import net from 'node:net';
import { crc32c } from './crc32c.js';

export interface ProxyTlv {
  type: number;
  value: Buffer;
}

/**
 * What the header says. `LOCAL` (health checks from HAProxy or the NLB) and v1 `UNKNOWN` carry
 * no addresses: family is 'UNSPEC' and the real connection endpoints apply.
 */
export interface ProxyInfo {
  command: 'LOCAL' | 'PROXY';
  family: 'TCP4' | 'TCP6' | 'UNIX' | 'UNSPEC';
  sourceAddress?: string;
  sourcePort?: number;
  destinationAddress?: string;
  destinationPort?: number;
  /** AWS PrivateLink VPC endpoint id from TLV 0xEA subtype 0x01 (`vpce-…`). */
  vpceId?: string;
  /** Every v2 TLV in header order, CRC32C and AWS ones included; values are copies. */
  tlvs: ProxyTlv[];
  version: 1 | 2;
}

export type ProxyProtocolErrorCode = 'TIMEOUT' | 'MALFORMED' | 'BAD_CRC' | 'TOO_LARGE' | 'CLOSED';

export class ProxyProtocolError extends Error {
  readonly code: ProxyProtocolErrorCode;

  constructor(code: ProxyProtocolErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProxyProtocolError';
    this.code = code;
  }
}

/** Longest v1 line, CRLF included (spec section 2.1). */
export const V1_MAX_LENGTH = 107;
/** 16-byte fixed part plus the largest 16-bit length. */
export const V2_MAX_LENGTH = 16 + 0xffff;

export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_AWS = 0xea;
export const PP2_SUBTYPE_AWS_VPCE_ID = 0x01;

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const CR = 0x0d;
const LF = 0x0a;

// v2 address family nibble -> size of its address block (spec section 2.2).
const FAMILY_UNSPEC = 0;
const FAMILY_INET = 1;
const FAMILY_INET6 = 2;
const FAMILY_UNIX = 3;
const ADDRESS_BLOCK = [0, 12, 36, 216];
const TRANSPORT_STREAM = 1;
const UNIX_PATH = 108;
const ZERO_CRC = new Uint8Array(4);

function malformed(message: string): ProxyProtocolError {
  return new ProxyProtocolError('MALFORMED', message);
}

/** True when the bytes present agree with the start of `signature`. */
function matchesPrefix(buf: Buffer, signature: Buffer): boolean {
  const n = Math.min(buf.length, signature.length);
  for (let i = 0; i < n; i++) if (buf[i] !== signature[i]) return false;
  return true;
}

/**
 * Parse the PROXY header at the start of `buf`. Returns the header and its length in bytes (the
 * bytes after it belong to the proxied stream), or 'incomplete' while `buf` is a valid prefix of
 * a header. Throws ProxyProtocolError (MALFORMED, BAD_CRC, TOO_LARGE) and nothing else.
 */
export function parseProxyHeader(buf: Buffer): { info: ProxyInfo; length: number } | 'incomplete' {
  if (buf.length === 0) return 'incomplete';
  if (buf[0] === V2_SIGNATURE[0] && matchesPrefix(buf, V2_SIGNATURE)) return parseV2(buf);
  if (buf[0] === V1_PREFIX[0] && matchesPrefix(buf, V1_PREFIX)) return parseV1(buf);
  throw malformed('connection does not start with a PROXY protocol signature');
}

function parseV2(buf: Buffer): { info: ProxyInfo; length: number } | 'incomplete' {
  if (buf.length < 13) return 'incomplete';
  const versionCommand = buf[12];
  if (versionCommand >> 4 !== 2) throw malformed('unsupported PROXY v2 version');
  const cmd = versionCommand & 0x0f;
  if (cmd > 1) throw malformed('unknown PROXY v2 command');
  if (buf.length < 14) return 'incomplete';
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  if (family > FAMILY_UNIX || transport > 2) throw malformed('unknown PROXY v2 address family or transport');
  if (buf.length < 16) return 'incomplete';
  const length = 16 + buf.readUInt16BE(14);
  if (buf.length < length) return 'incomplete';
  const header = buf.subarray(0, length);
  if (length - 16 < ADDRESS_BLOCK[family]) throw malformed('PROXY v2 address block shorter than its family needs');

  const info: ProxyInfo = { command: cmd === 0 ? 'LOCAL' : 'PROXY', family: 'UNSPEC', tlvs: [], version: 2 };
  // LOCAL: the spec says to ignore the family and keep the real endpoints; the block still has
  // to be skipped to reach the TLVs (a CRC32C among them is still checked).
  if (info.command === 'PROXY' && family !== FAMILY_UNSPEC) {
    if (transport !== TRANSPORT_STREAM) throw malformed('PROXY v2 transport is not a stream');
    readAddresses(header, family, info);
  }
  readTlvs(header, 16 + ADDRESS_BLOCK[family], info);
  return { info, length };
}

function readAddresses(header: Buffer, family: number, info: ProxyInfo): void {
  if (family === FAMILY_INET) {
    info.family = 'TCP4';
    info.sourceAddress = formatIPv4(header, 16);
    info.destinationAddress = formatIPv4(header, 20);
    info.sourcePort = header.readUInt16BE(24);
    info.destinationPort = header.readUInt16BE(26);
  } else if (family === FAMILY_INET6) {
    info.family = 'TCP6';
    info.sourceAddress = formatIPv6(header, 16);
    info.destinationAddress = formatIPv6(header, 32);
    info.sourcePort = header.readUInt16BE(48);
    info.destinationPort = header.readUInt16BE(50);
  } else {
    info.family = 'UNIX';
    info.sourceAddress = readUnixPath(header, 16);
    info.destinationAddress = readUnixPath(header, 16 + UNIX_PATH);
  }
}

function readTlvs(header: Buffer, start: number, info: ProxyInfo): void {
  let crcOffset = -1;
  let offset = start;
  while (offset < header.length) {
    if (header.length - offset < 3) throw malformed('truncated PROXY v2 TLV');
    const type = header[offset];
    const valueStart = offset + 3;
    offset = valueStart + header.readUInt16BE(offset + 1);
    if (offset > header.length) throw malformed('PROXY v2 TLV runs past the header');
    // Copy: a view would pin the socket's whole read buffer for the life of the connection.
    const value = Buffer.from(header.subarray(valueStart, offset));
    if (type === PP2_TYPE_CRC32C) {
      if (value.length !== 4 || crcOffset !== -1) throw malformed('PROXY v2 CRC32C TLV must appear once with 4 bytes');
      crcOffset = valueStart;
    } else if (type === PP2_TYPE_AWS) {
      if (value.length === 0) throw malformed('PROXY v2 AWS TLV without a subtype');
      if (value[0] === PP2_SUBTYPE_AWS_VPCE_ID) {
        if (info.vpceId !== undefined) throw malformed('PROXY v2 header carries two VPC endpoint ids');
        info.vpceId = readVpceId(value);
      }
    }
    info.tlvs.push({ type, value });
  }
  if (crcOffset !== -1) verifyCrc(header, crcOffset);
}

/** CRC32C over the whole header with the checksum field taken as zeros (spec 2.2.5). */
function verifyCrc(header: Buffer, offset: number): void {
  let crc = crc32c(header.subarray(0, offset));
  crc = crc32c(ZERO_CRC, crc);
  crc = crc32c(header.subarray(offset + 4), crc);
  if (crc !== header.readUInt32BE(offset)) throw new ProxyProtocolError('BAD_CRC', 'PROXY v2 header CRC32C mismatch');
}

function readVpceId(value: Buffer): string {
  if (value.length < 2) throw malformed('empty VPC endpoint id in PROXY v2 AWS TLV');
  for (let i = 1; i < value.length; i++) {
    if (value[i] < 0x21 || value[i] > 0x7e) throw malformed('VPC endpoint id in PROXY v2 AWS TLV is not printable ASCII');
  }
  return value.toString('latin1', 1);
}

function formatIPv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/** RFC 5952 text, with IPv4-mapped addresses as `::ffff:a.b.c.d` like Node's remoteAddress. */
function formatIPv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + 2 * i));
  if (groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)) return `::ffff:${formatIPv4(buf, at + 12)}`;
  // The longest run of two or more zero groups (the first on a tie) becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function readUnixPath(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end === -1 || end > at + UNIX_PATH ? at + UNIX_PATH : end);
}

function parseV1(buf: Buffer): { info: ProxyInfo; length: number } | 'incomplete' {
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let length = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i];
    if (c === LF) {
      if (buf[i - 1] !== CR) throw malformed('PROXY v1 line must end with CRLF');
      length = i + 1;
      break;
    }
    if (c === CR) {
      if (i + 1 < buf.length && buf[i + 1] !== LF) throw malformed('PROXY v1 line must end with CRLF');
    } else if (c < 0x20 || c > 0x7e) {
      throw malformed('PROXY v1 line is not printable ASCII');
    }
  }
  if (length === -1) {
    if (buf.length >= V1_MAX_LENGTH) throw new ProxyProtocolError('TOO_LARGE', `PROXY v1 line longer than ${V1_MAX_LENGTH} bytes`);
    return 'incomplete';
  }

  const fields = buf.toString('latin1', 0, length - 2).split(' ');
  if (fields[1] === 'UNKNOWN') {
    // Spec: the rest of an UNKNOWN line is to be ignored; the real endpoints apply.
    return { info: { command: 'PROXY', family: 'UNSPEC', tlvs: [], version: 1 }, length };
  }
  if (fields.length !== 6 || (fields[1] !== 'TCP4' && fields[1] !== 'TCP6')) throw malformed('PROXY v1 line is not "PROXY TCP4|TCP6 src dst sport dport"');
  const family = fields[1];
  const isAddress = family === 'TCP4' ? net.isIPv4 : (a: string) => net.isIPv6(a) && !a.includes('%');
  if (!isAddress(fields[2]) || !isAddress(fields[3])) throw malformed(`PROXY v1 addresses are not ${family} addresses`);
  const info: ProxyInfo = {
    command: 'PROXY',
    family,
    sourceAddress: fields[2],
    destinationAddress: fields[3],
    sourcePort: parsePort(fields[4]),
    destinationPort: parsePort(fields[5]),
    tlvs: [],
    version: 1,
  };
  return { info, length };
}

function parsePort(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 0xffff) throw malformed('PROXY v1 port is not in 0..65535');
  return Number(text);
}

/**
 * Read the first PROXY header from a freshly accepted socket, for a listener that requires one
 * (the peer is a trusted proxy). Resolves with the header and the same socket, paused, with any
 * bytes received after the header pushed back into it; hand it to the TLS server as it is
 * (`httpsServer.emit('connection', socket)`) without reading from it.
 *
 * Giving back the real socket rather than a wrapping Duplex keeps TLS on Node's native path:
 * TLSSocket takes over the TCP handle and first drains what the socket has buffered. Only bytes
 * unshifted while the socket is paused and has no 'data' listener end up in that buffer; that is
 * why this function stops flowing mode before it unshifts. Because TLS runs on the same TCP
 * handle, the TLSSocket's remoteAddress/remotePort are the socket's (the proxy's side): key the
 * ProxyInfo by them, or keep a reference to this socket.
 *
 * Rejects with ProxyProtocolError and destroys the socket when no complete header arrives within
 * `timeoutMs` (a total deadline, so a trickling peer cannot hold the connection), the bytes are
 * not a PROXY header (TLS from an untrusted path, say), the header is malformed or oversized, its
 * CRC32C is wrong, or the peer goes away first.
 */
export function readProxyHeader(
  socket: net.Socket,
  opts: { timeoutMs: number },
): Promise<{ info: ProxyInfo; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(new ProxyProtocolError('CLOSED', 'connection closed before the PROXY header'));
      return;
    }
    // Bytes of an incomplete header, kept only when the header spans several reads.
    let pending: Buffer | null = null;
    let used = 0;

    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      socket.off('error', onError);
    };
    const fail = (err: ProxyProtocolError): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onClosed = (): void => fail(new ProxyProtocolError('CLOSED', 'connection closed before the PROXY header was complete'));
    const onError = (err: Error): void => fail(new ProxyProtocolError('CLOSED', 'connection failed before the PROXY header was complete', { cause: err }));
    const onData = (chunk: Buffer): void => {
      let buf = chunk;
      if (pending !== null) {
        pending = append(pending, used, chunk);
        used += chunk.length;
        buf = pending.subarray(0, used);
      }
      let parsed: ReturnType<typeof parseProxyHeader>;
      try {
        parsed = parseProxyHeader(buf);
      } catch (err) {
        fail(err as ProxyProtocolError);
        return;
      }
      if (parsed === 'incomplete') {
        // The parser bounds this: it throws TOO_LARGE before a header can exceed its maximum.
        if (pending === null) {
          pending = append(Buffer.allocUnsafe(256), 0, chunk);
          used = chunk.length;
        }
        return;
      }
      cleanup();
      socket.pause();
      if (parsed.length < buf.length) socket.unshift(buf.subarray(parsed.length));
      resolve({ info: parsed.info, socket });
    };

    const timer = setTimeout(
      () => fail(new ProxyProtocolError('TIMEOUT', `no complete PROXY header within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    timer.unref(); // the socket keeps the process alive while it matters
    socket.on('data', onData);
    socket.on('end', onClosed);
    socket.on('close', onClosed);
    socket.on('error', onError);
    socket.resume(); // also when the server was created with pauseOnConnect
  });
}

/** Append `chunk` at `used`, growing by doubling so a header in many tiny reads costs linear time. */
function append(acc: Buffer, used: number, chunk: Buffer): Buffer {
  if (used + chunk.length > acc.length) {
    const grown = Buffer.allocUnsafe(Math.max(acc.length * 2, used + chunk.length));
    acc.copy(grown, 0, 0, used);
    acc = grown;
  }
  chunk.copy(acc, used);
  return acc;
}
