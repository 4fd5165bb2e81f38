/**
 * PROXY protocol header builders for tests and benchmarks: what HAProxy or an AWS NLB would send
 * in front of a connection.
 */
import ipaddr from 'ipaddr.js';
import { crc32c } from '../../gateway/crc32c.js';
import { PP2_SUBTYPE_AWS_VPCE_ID, PP2_TYPE_AWS, PP2_TYPE_CRC32C } from '../../gateway/proxy-protocol.js';

export const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

export interface V2HeaderOptions {
  command?: 'LOCAL' | 'PROXY';
  family?: 'TCP4' | 'TCP6' | 'UNIX' | 'UNSPEC';
  sourceAddress?: string;
  destinationAddress?: string;
  sourcePort?: number;
  destinationPort?: number;
  vpceId?: string;
  tlvs?: Array<{ type: number; value: Buffer }>;
  /** Append a PP2_TYPE_CRC32C TLV with the correct checksum. */
  crc?: boolean;
}

const FAMILY_BYTE = { UNSPEC: 0x00, TCP4: 0x11, TCP6: 0x21, UNIX: 0x31 } as const;

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

function unixPath(path: string): Buffer {
  const out = Buffer.alloc(108);
  out.write(path, 'latin1');
  return out;
}

function addressBlock(o: V2HeaderOptions, family: keyof typeof FAMILY_BYTE): Buffer {
  if (family === 'UNSPEC') return Buffer.alloc(0);
  if (family === 'UNIX') return Buffer.concat([unixPath(o.sourceAddress ?? ''), unixPath(o.destinationAddress ?? '')]);
  const bytes = (a: string): number[] => {
    const parsed = ipaddr.parse(a);
    return family === 'TCP6' && parsed.kind() === 'ipv4' ? (parsed as ipaddr.IPv4).toIPv4MappedAddress().toByteArray() : parsed.toByteArray();
  };
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(o.sourcePort ?? 0, 0);
  ports.writeUInt16BE(o.destinationPort ?? 0, 2);
  return Buffer.concat([
    Buffer.from(bytes(o.sourceAddress ?? (family === 'TCP4' ? '0.0.0.0' : '::'))),
    Buffer.from(bytes(o.destinationAddress ?? (family === 'TCP4' ? '0.0.0.0' : '::'))),
    ports,
  ]);
}

/** A PROXY v2 header. Defaults: PROXY, TCP4, no TLVs. */
export function v2Header(o: V2HeaderOptions = {}): Buffer {
  const command = o.command ?? 'PROXY';
  const family = o.family ?? (command === 'LOCAL' ? 'UNSPEC' : 'TCP4');
  const parts: Buffer[] = [addressBlock(o, family)];
  if (o.vpceId !== undefined) parts.push(tlv(PP2_TYPE_AWS, Buffer.concat([Buffer.from([PP2_SUBTYPE_AWS_VPCE_ID]), Buffer.from(o.vpceId, 'latin1')])));
  for (const t of o.tlvs ?? []) parts.push(tlv(t.type, t.value));
  if (o.crc) parts.push(tlv(PP2_TYPE_CRC32C, Buffer.alloc(4)));
  const body = Buffer.concat(parts);
  const fixed = Buffer.alloc(16);
  V2_SIGNATURE.copy(fixed);
  fixed[12] = command === 'LOCAL' ? 0x20 : 0x21;
  fixed[13] = FAMILY_BYTE[family];
  fixed.writeUInt16BE(body.length, 14);
  const header = Buffer.concat([fixed, body]);
  if (o.crc) header.writeUInt32BE(crc32c(header), header.length - 4);
  return header;
}

/** A PROXY v1 line, CRLF included. */
export function v1Header(family: 'TCP4' | 'TCP6' | 'UNKNOWN', src = '', dst = '', sport = 0, dport = 0): Buffer {
  return Buffer.from(family === 'UNKNOWN' ? 'PROXY UNKNOWN\r\n' : `PROXY ${family} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}
