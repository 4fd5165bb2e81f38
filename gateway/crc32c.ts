/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as RFC 4960 Appendix B and the PROXY v2
 * PP2_TYPE_CRC32C TLV use it. Table-driven, one byte per step: headers are small and checked once
 * per connection, so a dependency with hardware acceleration would not pay for itself.
 */

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC32C of `data`. Pass the previous result as `crc` to continue over several pieces:
 * `crc32c(b, crc32c(a))` equals `crc32c(a ‖ b)`.
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
