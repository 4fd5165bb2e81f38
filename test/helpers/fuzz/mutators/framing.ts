// Mutators of one layer: Framing: how the body is delimited. Anything but a correct chunked body is `last`.
import { removeHeader, setHeader } from '../draft.js';
import { chunked, type Mutator, sizeOf } from './util.js';

export const FRAMING_MUTATORS: Mutator[] = [
  {
    name: 'framing.chunked', layer: 'framing', weight: 2,
    apply(d, r) {
      removeHeader(d, 'content-length');
      d.headers.push(['Transfer-Encoding', r.pick(['chunked', 'chunked', 'Chunked', 'gzip, chunked'])]);
      d.payload = chunked(d.body, r, r.chance(0.3));
    },
  },
  {
    name: 'framing.chunked-error', layer: 'framing', weight: 1.2,
    apply(d, r) {
      removeHeader(d, 'content-length');
      d.headers.push(['Transfer-Encoding', 'chunked']);
      const n = d.body.length.toString(16);
      const body = d.body.toString('latin1');
      const bad = r.pick([
        () => `zz\r\n${body}\r\n0\r\n\r\n`,
        () => `${(d.body.length + 5).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        () => `${Math.max(0, d.body.length - 3).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\r\n${body}0\r\n\r\n`,
        () => `${n}\n${body}\n0\n\n`,
        () => `-1\r\n${body}\r\n0\r\n\r\n`,
        () => `ffffffffffffffffff\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\r\n${body}\r\n`,
        () => ` ${n}\r\n${body}\r\n0\r\n\r\n`,
        () => `+${n}\r\n${body}\r\n0\r\n\r\n`,
        () => `${n};${'e'.repeat(sizeOf(r, [10, 5000], [70_000]))}\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\u0000\r\n${body}\r\n0\r\n\r\n`,
        () => `${n}\r\n${body}\r\n0\r\nX-Bad Trailer: 1\r\n\r\n`,
        () => `${n}\r\n${body}\r\n0\r\n`,
        () => `0x${n}\r\n${body}\r\n0\r\n\r\n`,
      ])();
      d.payload = Buffer.from(bad, 'latin1');
      d.last = true;
    },
  },
  {
    name: 'framing.cl-and-te', layer: 'framing', weight: 0.8,
    apply(d, r) {
      d.headers.push(['Transfer-Encoding', r.pick(['chunked', ' chunked', 'chunked ', 'identity'])]);
      if (r.chance(0.5)) d.payload = chunked(d.body, r, false);
      d.last = true;
    },
  },
  {
    name: 'framing.te-variants', layer: 'framing', weight: 0.8,
    apply(d, r) {
      removeHeader(d, 'content-length');
      const te = r.pick([['chunked, identity'], ['identity'], ['gzip'], ['xchunked'], ['chunked', 'chunked'], ['chunked\t'], ['chunked;q=1'], ['identity, chunked'], ['chunked', 'gzip'], ['\u00e9chunked']]);
      for (const v of te) d.headers.push(['Transfer-Encoding', v]);
      d.payload = chunked(d.body, r, false);
      d.last = true;
    },
  },
  {
    name: 'framing.content-length', layer: 'framing', weight: 1,
    apply(d, r) {
      const len = d.body.length;
      const v = r.pick(['-1', 'abc', `+${len}`, `${len} ${len}`, `0x${len.toString(16)}`, '99999999999999999999', '1e3', '', `${len},${len}`, `${len}, ${len + 1}`, String(Math.max(0, len - r.range(1, 10))), String(len + r.range(1, 10)), `0${len}`, `${len}\u0000`]);
      setHeader(d, 'Content-Length', v);
      d.last = true;
    },
  },
  {
    name: 'framing.duplicate-length', layer: 'framing', weight: 0.6,
    apply(d, r) {
      d.headers.push([r.pick(['Content-Length', 'content-length']), String(r.chance(0.5) ? d.body.length : d.body.length + 1)]);
      d.last = true;
    },
  },

];
