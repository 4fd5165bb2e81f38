import t from 'tap';
import { crc32c } from '../../gateway/crc32c.js';

t.test('matches the published CRC32C check values', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283); // the catalogue check value for CRC-32C
  t.equal(crc32c(Buffer.alloc(0)), 0);
  // RFC 3720 (iSCSI) B.4 test vectors.
  t.equal(crc32c(Buffer.alloc(32, 0x00)), 0x8a9136aa);
  t.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  t.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  t.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
});

t.test('continues over pieces', async (t) => {
  const data = Buffer.from('the quick brown fox jumps over the lazy dog');
  for (const cut of [0, 1, 7, data.length - 1, data.length]) {
    t.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), crc32c(data), `split at ${cut}`);
  }
});
