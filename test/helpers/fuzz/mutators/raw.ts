// Mutators of one layer: Raw bytes of the finished request.
import { type Mutator, WEIRD_BYTES } from './util.js';

export const RAW_MUTATORS: Mutator[] = [
  {
    name: 'raw.bit-flip', layer: 'raw', weight: 0.6,
    apply(d, r) {
      const b = Buffer.from(d.bytes!);
      for (let n = r.range(1, 4); n > 0; n--) b[r.int(b.length)]! ^= 1 << r.int(8);
      d.bytes = b;
      d.last = true;
    },
  },
  {
    name: 'raw.insert', layer: 'raw', weight: 0.4,
    apply(d, r) {
      const b = d.bytes!;
      const at = r.int(b.length + 1);
      d.bytes = Buffer.concat([b.subarray(0, at), Buffer.from([r.pick(WEIRD_BYTES)]), b.subarray(at)]);
      d.last = true;
    },
  },
  {
    name: 'raw.truncate', layer: 'raw', weight: 0.4,
    apply(d, r) {
      d.bytes = d.bytes!.subarray(0, r.int(d.bytes!.length));
      d.last = true;
    },
  },
  {
    name: 'raw.line-endings', layer: 'raw', weight: 0.3,
    apply(d, r) {
      const b = d.bytes!;
      const end = b.indexOf('\r\n\r\n');
      const head = b.subarray(0, end < 0 ? b.length : end + 4).toString('latin1');
      const eol = r.pick(['\n', '\r', '\r\r\n', '\n\r']);
      d.bytes = Buffer.concat([Buffer.from(head.replace(/\r\n/g, eol), 'latin1'), b.subarray(head.length)]);
      d.last = true;
    },
  },
  {
    name: 'raw.prefix', layer: 'raw', weight: 0.2,
    apply(d, r) {
      d.bytes = Buffer.concat([Buffer.from(r.pick(['\r\n', '\r\n\r\n', '\n', ' ', '\u0000', 'GET / HTTP/1.1\r\n', '\u0016\u0003\u0001']), 'latin1'), d.bytes!]);
      d.last = true;
    },
  },
  {
    name: 'raw.pipeline', layer: 'raw', weight: 0.6,
    apply(d, r) {
      // A second request in the same write: smuggling attempts look like this.
      const tail = r.pick([() => d.bytes!, () => Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), () => r.bytes(r.range(1, 200)), () => Buffer.from('0\r\n\r\n')]);
      d.bytes = Buffer.concat([d.bytes!, tail()]);
      d.last = true;
    },
  },
];
