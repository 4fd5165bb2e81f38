// The call pipe between the cluster and a node process is a byte stream: whatever way it cuts the
// frames into chunks, the reader gives back the same frames in order, and a length no frame can
// have is refused at once instead of waiting for (or buffering) bytes that will never make sense.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { FrameReader, MAX_FRAME_BYTES } from '../../xks/hsm/frame-reader.js';
import { decodeCall, encodeCall } from '../../xks/hsm/wire.js';
import type { CallRequest } from '../../xks/hsm/protocol.js';

const reqs: CallRequest[] = [
  { t: 'req', id: 1, expiresAt: 1e12, call: { op: 'probe' } },
  { t: 'req', id: 2, expiresAt: 1e12, call: { op: 'encrypt', input: { label: 'k', plaintext: randomBytes(300), hsmAad: randomBytes(4) } } },
  { t: 'req', id: 3, expiresAt: 1e12, call: { op: 'keyInfo', label: 'k-aes' } },
];
const stream = Buffer.concat(reqs.map(encodeCall));

/** Feeds the chunks to a new reader; the calls it decoded. */
function read(chunks: Buffer[]): CallRequest[] {
  const out: CallRequest[] = [];
  const reader = new FrameReader((body) => out.push(decodeCall(body)));
  for (const c of chunks) reader.push(c);
  return out;
}

t.test('several frames in one chunk come out in order', async (t) => {
  t.same(read([stream]), reqs);
});

t.test('a stream cut into two chunks at every byte boundary gives the same frames', async (t) => {
  let same = 0;
  for (let cut = 0; cut <= stream.length; cut++) {
    const got = read([stream.subarray(0, cut), stream.subarray(cut)]);
    if (JSON.stringify(got) === JSON.stringify(reqs)) same++;
    else t.fail(`cut at byte ${cut}`);
  }
  t.equal(same, stream.length + 1, 'every cut');
});

t.test('one byte per chunk gives the same frames, each as soon as it is whole', async (t) => {
  const seen: number[] = [];
  const reader = new FrameReader((body) => seen.push(decodeCall(body).id));
  const ends = reqs.reduce<number[]>((acc, r) => [...acc, (acc.at(-1) ?? 0) + encodeCall(r).length], []);
  for (let i = 0; i < stream.length; i++) {
    reader.push(stream.subarray(i, i + 1));
    t.equal(seen.length, ends.filter((e) => e <= i + 1).length, `after byte ${i + 1}`);
  }
  t.same(seen, [1, 2, 3]);
});

t.test('a corrupt length is refused, whether it arrives whole or split', async (t) => {
  const huge = Buffer.alloc(4);
  huge.writeUInt32LE(MAX_FRAME_BYTES + 1);
  t.throws(() => read([huge]), RangeError, 'longer than any frame');
  t.throws(() => read([encodeCall(reqs[0]!), huge.subarray(0, 2), huge.subarray(2)]), RangeError, 'split after a good frame');
  t.throws(() => read([Buffer.alloc(4)]), RangeError, 'an empty frame');
  const delivered: number[] = [];
  const reader = new FrameReader((body) => delivered.push(decodeCall(body).id));
  t.throws(() => reader.push(Buffer.concat([encodeCall(reqs[0]!), huge])), RangeError);
  t.same(delivered, [1], 'the good frame before it was still delivered');
});
