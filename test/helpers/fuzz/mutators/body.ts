// Mutators of one layer: Body bytes. The builder re-signs afterwards (mostly), so these reach the JSON parser.
import { BAD_UTF8, type Mutator, sizeOf } from './util.js';

export const BODY_MUTATORS: Mutator[] = [
  {
    name: 'body.bit-flip', layer: 'body', weight: 5,
    apply(d, r) {
      if (!d.body.length) return;
      d.body = Buffer.from(d.body);
      for (let n = r.range(1, 8); n > 0; n--) d.body[r.int(d.body.length)]! ^= 1 << r.int(8);
    },
  },
  {
    name: 'body.truncate', layer: 'body', weight: 3,
    apply(d, r) {
      d.body = d.body.subarray(0, r.int(d.body.length + 1));
    },
  },
  {
    name: 'body.extend', layer: 'body', weight: 2,
    apply(d, r) {
      const tail = r.pick([() => r.bytes(r.range(1, 64)), () => Buffer.from(' '.repeat(r.range(1, 4000))), () => Buffer.from('{}'), () => Buffer.from(',"x":1}'), () => Buffer.from('\u0000')]);
      d.body = Buffer.concat([d.body, tail()]);
    },
  },
  {
    name: 'body.bad-utf8', layer: 'body', weight: 3,
    apply(d, r) {
      const at = r.int(d.body.length + 1);
      d.body = Buffer.concat([d.body.subarray(0, at), r.pick(BAD_UTF8), d.body.subarray(at)]);
    },
  },
  {
    name: 'body.encoding', layer: 'body', weight: 1,
    apply(d, r) {
      const text = d.body.toString('latin1');
      d.body = r.pick([
        () => Buffer.concat([Buffer.from('efbbbf', 'hex'), d.body]),
        () => Buffer.from(text, 'utf16le'),
        () => Buffer.concat([Buffer.from('fffe', 'hex'), Buffer.from(text, 'utf16le')]),
        () => Buffer.from(text.replace(/"/g, "'")),
        () => Buffer.from(`\r\n\t ${text} \r\n`),
      ])();
    },
  },
  {
    name: 'body.empty', layer: 'body', weight: 1,
    apply(d) {
      d.body = Buffer.alloc(0);
    },
  },
  {
    name: 'body.over-limit', layer: 'body', weight: 0.4,
    apply(d, r, t) {
      // Valid JSON padded with whitespace just past the cap, or far past it.
      const size = sizeOf(r, [t.maxBodyBytes + 1, t.maxBodyBytes + r.range(2, 4096)], [t.maxBodyBytes * 3]);
      d.body = Buffer.concat([d.body, Buffer.alloc(Math.max(0, size - d.body.length), 0x20)]);
    },
  },

];
