/**
 * Source address allowlists (server.allow, proxyProtocol.trustedProxies, per key store `allow`):
 * CIDRs parsed once into integer masks, so the check that runs on every accepted connection
 * is a few integer comparisons.
 */
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

/** 1 to 4 hex digits to a number, or -1. */
function hexGroup(text: string): number {
  if (text.length === 0 || text.length > 4) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const digit = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (digit === -1) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** `a:b:c` to groups (an empty string is no group), or null. */
function hexGroups(text: string): number[] | null {
  if (text === '') return [];
  const groups = text.split(':').map(hexGroup);
  return groups.includes(-1) ? null : groups;
}

/**
 * IPv6 text (RFC 4291 2.2: `::` compression, trailing dotted IPv4, any case; a zone id as
 * socket.remoteAddress may carry one is ignored) to four 32-bit words, or null. Written out rather
 * than taken from ipaddr.js: it runs per connection, and ipaddr.js reads ::a.b.c.d as ::ffff:a.b.c.d.
 */
function ipv6ToWords(text: string): Uint32Array | null {
  const zone = text.indexOf('%');
  let rest = zone === -1 ? text : text.slice(0, zone);
  let tail: number[] = [];
  if (rest.includes('.')) {
    const colon = rest.lastIndexOf(':');
    const v4 = ipv4ToInt(rest.slice(colon + 1));
    if (colon === -1 || v4 === -1) return null;
    tail = [v4 >>> 16, v4 & 0xffff];
    rest = rest.endsWith('::', colon + 1) ? rest.slice(0, colon + 1) : rest.slice(0, colon);
  }
  const halves = rest.split('::');
  if (halves.length > 2) return null;
  const head = hexGroups(halves[0]);
  const back = halves.length === 2 ? hexGroups(halves[1]) : [];
  if (head === null || back === null) return null;
  const zeros = 8 - tail.length - head.length - back.length;
  if (halves.length === 2 ? zeros < 1 : zeros !== 0) return null;
  const groups = [...head, ...new Array<number>(zeros).fill(0), ...back, ...tail];
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i++) words[i] = groups[2 * i] * 0x10000 + groups[2 * i + 1];
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
  const value = ipv4ToInt(address);
  const is4 = value !== -1;
  const words = is4 || address.includes('%') ? null : ipv6ToWords(address);
  if (!is4 && words === null) return `"${cidr}" is not an IPv4 or IPv6 address or CIDR (such as 10.0.0.0/8 or 2001:db8::/32)`;
  const bits = is4 ? 32 : 128;
  if (prefixText !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return `"${cidr}" has a prefix length that is not a number`;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return `"${cidr}" has a prefix length above ${bits}`;

  if (words === null) {
    const mask = mask32(prefix);
    const network = (value & mask) >>> 0;
    if (network !== value) return `"${cidr}" has host bits set (did you mean ${u32Bytes(network).join('.')}/${prefix}?)`;
    return { v4: { network, mask } };
  }

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
