/**
 * Source address allowlists (server.allow, proxyProtocol.trustedProxies, per key store `allow`):
 * CIDRs parsed once into integer masks, so the check that runs on every accepted connection
 * is a few integer comparisons.
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';

interface Range4 {
  network: number;
  mask: number;
}

interface Range6 {
  network: Uint32Array;
  mask: Uint32Array;
}

type Entry = { v4: Range4 } | { v6: Range6 };

function mask32(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Dotted-quad IPv4 to an unsigned 32-bit integer, or -1. Strict: no leading zeros, four parts. */
function ipv4ToInt(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 0x30);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** IPv6 text (zone id allowed, as socket.remoteAddress may carry one) to four 32-bit words. */
function ipv6ToWords(text: string): Uint32Array | null {
  // ipaddr.js reads the deprecated IPv4-compatible form ::a.b.c.d as IPv4-mapped; it is not.
  if (text.startsWith('::') && !text.includes(':', 2)) {
    const v4 = ipv4ToInt(text.slice(2).split('%')[0]);
    if (v4 !== -1) return Uint32Array.of(0, 0, 0, v4);
  }
  let parts: number[];
  try {
    parts = ipaddr.IPv6.parse(text).parts;
  } catch {
    return null;
  }
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i++) words[i] = (parts[2 * i] << 16) | parts[2 * i + 1];
  return words;
}

function isMapped(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** Parse one entry, or return a one-line reason that names it. */
function parseEntry(cidr: string): Entry | string {
  const slash = cidr.indexOf('/');
  const address = slash === -1 ? cidr : cidr.slice(0, slash);
  const prefixText = slash === -1 ? undefined : cidr.slice(slash + 1);
  const is4 = net.isIPv4(address);
  if (!is4 && (!net.isIPv6(address) || address.includes('%'))) {
    return `"${cidr}" is not an IPv4 or IPv6 address or CIDR (such as 10.0.0.0/8 or 2001:db8::/32)`;
  }
  const bits = is4 ? 32 : 128;
  if (prefixText !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return `"${cidr}" has a prefix length that is not a number`;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return `"${cidr}" has a prefix length above ${bits}`;

  if (is4) {
    const mask = mask32(prefix);
    const value = ipv4ToInt(address);
    const network = (value & mask) >>> 0;
    if (network !== value) return `"${cidr}" has host bits set (did you mean ${ipaddr.fromByteArray(u32Bytes(network)).toString()}/${prefix}?)`;
    return { v4: { network, mask } };
  }

  const words = ipv6ToWords(address)!;
  const mask = new Uint32Array(4);
  for (let i = 0; i < 4; i++) mask[i] = mask32(Math.min(32, Math.max(0, prefix - 32 * i)));
  const network = words.map((w, i) => w & mask[i]);
  if (network.some((w, i) => w !== words[i])) {
    const bytes = Array.from(network).flatMap(u32Bytes);
    return `"${cidr}" has host bits set (did you mean ${ipaddr.fromByteArray(bytes).toString()}/${prefix}?)`;
  }
  // ::ffff:a.b.c.d/N for N >= 96 names IPv4 clients: keep it with the IPv4 ranges.
  if (prefix >= 96 && isMapped(words)) return { v4: { network: words[3], mask: mask[3] } };
  return { v6: { network, mask } };
}

function u32Bytes(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** null when `cidr` is a valid allowlist entry, else a one-line reason that names it. */
export function validateCidr(cidr: string): string | null {
  const entry = parseEntry(cidr);
  return typeof entry === 'string' ? entry : null;
}

/**
 * A set of IPv4 and IPv6 CIDRs. Entries: `a.b.c.d/N`, `x:x::x/N`, or a bare address (a single
 * host); host bits must be clear. An IPv4-mapped IPv6 address (::ffff:1.2.3.4, as a dual-stack
 * socket reports IPv4 clients) matches the IPv4 ranges as well as the IPv6 ones.
 */
export class CidrList {
  private readonly v4: Range4[] = [];
  private readonly v6: Range6[] = [];

  /** Throws an Error naming the first invalid entry. */
  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const entry = parseEntry(cidr);
      if (typeof entry === 'string') throw new Error(`invalid CIDR ${entry}`);
      if ('v4' in entry) this.v4.push(entry.v4);
      else this.v6.push(entry.v6);
    }
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  /** True when `address` lies in one of the ranges. Anything that is not an IP address: false. */
  has(address: string): boolean {
    const v4 = ipv4ToInt(address);
    if (v4 !== -1) return this.has4(v4);
    if (!address.includes(':')) return false;
    const words = ipv6ToWords(address);
    if (words === null) return false;
    if (isMapped(words) && this.has4(words[3])) return true;
    for (const r of this.v6) {
      if (
        (words[0] & r.mask[0]) >>> 0 === r.network[0] &&
        (words[1] & r.mask[1]) >>> 0 === r.network[1] &&
        (words[2] & r.mask[2]) >>> 0 === r.network[2] &&
        (words[3] & r.mask[3]) >>> 0 === r.network[3]
      ) {
        return true;
      }
    }
    return false;
  }

  private has4(address: number): boolean {
    for (const r of this.v4) if ((address & r.mask) >>> 0 === r.network) return true;
    return false;
  }
}
