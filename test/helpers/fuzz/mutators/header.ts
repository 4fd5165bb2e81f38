// Mutators of one layer: Headers.
import { FRAMING_HEADERS, removeHeader, setHeader } from '../draft.js';
import { type Mutator, randomToken, sizeOf } from './util.js';

export const HEADER_MUTATORS: Mutator[] = [
  {
    name: 'header.drop', layer: 'header', weight: 3,
    apply(d, r) {
      const i = r.int(d.headers.length);
      if (FRAMING_HEADERS.has(d.headers[i]![0].toLowerCase())) d.last = true;
      d.headers.splice(i, 1);
    },
  },
  {
    name: 'header.duplicate', layer: 'header', weight: 3,
    apply(d, r) {
      // No `last`: a second Content-Length must be refused; were it taken, the case would stall.
      const [name, value] = r.pick(d.headers);
      d.headers.splice(r.int(d.headers.length + 1), 0, [r.chance(0.5) ? name : name.toUpperCase(), r.chance(0.5) ? value : randomToken(r)]);
    },
  },
  {
    name: 'header.garble-name', layer: 'header', weight: 2,
    apply(d, r) {
      const i = r.int(d.headers.length);
      const [name, value] = d.headers[i]!;
      if (FRAMING_HEADERS.has(name.toLowerCase())) d.last = true;
      const at = r.int(name.length + 1);
      const garbled = r.pick([
        () => name.slice(0, at) + String.fromCharCode(r.pick([0x00, 0x20, 0x28, 0x3a, 0x7f, 0x80, 0xe9, 0x09, 0x22, 0x2c])) + name.slice(at),
        () => `${name} `,
        () => ` ${name}`,
        () => '',
        () => name.replace(/-/g, '_'),
        () => 'X'.repeat(sizeOf(r, [100], [5000])),
      ])();
      d.headers[i] = [garbled, value];
    },
  },
  {
    name: 'header.garble-value', layer: 'header', weight: 4,
    apply(d, r) {
      const i = r.int(d.headers.length);
      // No `last`: a value the server cannot read (Content-Length's too) must be refused, and
      // one it can read keeps the framing; anything else shows up as a stall.
      const [name, value] = d.headers[i]!;
      const at = r.int(value.length + 1);
      const insert = r.pick(['\u0000', '\r', '\n', '\u007f', '\u00e9', '\u00ff', Buffer.from('é😀').toString('latin1'), '\t', '  ', '\u0001', '\u001b[31m']);
      const v = r.pick([() => value.slice(0, at) + insert + value.slice(at), () => ` ${value} `, () => '', () => value + 'x'.repeat(sizeOf(r, [100, 4000], [12000]))])();
      d.headers[i] = [name, v];
    },
  },
  {
    name: 'header.obs-fold', layer: 'header', weight: 0.8,
    apply(d, r) {
      const i = r.int(d.headers.length);
      const [name, value] = d.headers[i]!;
      const at = r.int(value.length + 1);
      d.headers[i] = [name, `${value.slice(0, at)}\r\n${r.pick([' ', '\t'])}${value.slice(at)}`];
      d.last = true;
    },
  },
  {
    name: 'header.many', layer: 'header', weight: 1,
    apply(d, r) {
      for (let n = sizeOf(r, [50, 200], [1000, 2100]); n > 0; n--) d.headers.push([`X-F${n}`, r.hex(r.range(1, 16))]);
    },
  },
  {
    name: 'header.huge', layer: 'header', weight: 0.5,
    apply(d, r) {
      d.headers.push([r.pick(['X-Big', 'Cookie', 'Host', 'Authorization']), 'h'.repeat(sizeOf(r, [15_000, 16_400], [40_000, 70_000]))]);
    },
  },
  {
    name: 'header.content-type', layer: 'header', weight: 3,
    apply(d, r) {
      const v = r.pick(['text/plain', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;', 'application/jsonp', '', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json, text/plain', 'application/*', '*/*', 'application/json\u0000']);
      if (r.chance(0.2)) d.headers.push(['Content-Type', v]);
      else if (r.chance(0.1)) removeHeader(d, 'content-type');
      else setHeader(d, 'Content-Type', v);
    },
  },
  {
    name: 'header.expect', layer: 'header', weight: 1,
    apply(d, r) {
      d.headers.push(['Expect', r.pick(['100-continue', '100-Continue', 'foo', '', '200-ok'])]);
    },
  },
  {
    name: 'header.connection', layer: 'header', weight: 2,
    apply(d, r) {
      const v = r.pick(['close', 'keep-alive', 'Upgrade', 'TE', 'foo, close', 'keep-alive, Transfer-Encoding', 'Content-Length', 'upgrade, close']);
      d.headers.push(['Connection', v]);
      if (/upgrade/i.test(v)) d.headers.push(['Upgrade', r.pick(['websocket', 'h2c', 'TLS/1.2'])]);
    },
  },
  {
    name: 'header.host', layer: 'header', weight: 2,
    apply(d, r, t) {
      const v = r.pick(['evil.example', '', 'localhost:1', '[::1]', 'x'.repeat(300), `${t.host}@evil`, t.host.toUpperCase(), `${t.host}.`]);
      if (r.chance(0.3)) d.headers.push(['Host', v]);
      else if (r.chance(0.2)) removeHeader(d, 'host');
      else setHeader(d, 'Host', v);
    },
  },
  {
    name: 'header.misc', layer: 'header', weight: 2,
    apply(d, r) {
      d.headers.push(
        r.pick<[string, string]>([
          ['X-Forwarded-For', '10.0.0.1'],
          ['Forwarded', 'for=10.0.0.1;proto=https'],
          ['X-Amz-Content-Sha256', 'UNSIGNED-PAYLOAD'],
          ['Content-Encoding', 'gzip'],
          ['Accept-Encoding', 'gzip, br'],
          ['Range', 'bytes=0-1'],
          ['Trailer', 'X-Amz-Date'],
          ['TE', 'trailers'],
          ['Proxy-Connection', 'keep-alive'],
          ['Keep-Alive', 'timeout=1, max=1'],
          ['X-HTTP-Method-Override', 'GET'],
          [':authority', 'localhost'],
        ]),
      );
    },
  },

];
