import t from 'tap';
import {
  parseProxyHeader,
  ProxyProtocolError,
  V1_MAX_LENGTH,
  V2_MAX_LENGTH,
  type ProxyInfo,
} from '../../gateway/proxy-protocol.js';
import { v1Header, v2Header, V2_SIGNATURE } from '../helpers/proxy-header.js';

type Parsed = { info: ProxyInfo; length: number };

function parsed(buf: Buffer): Parsed {
  const r = parseProxyHeader(buf);
  if (r === 'incomplete') throw new Error('unexpectedly incomplete');
  return r;
}

function code(buf: Buffer): string {
  try {
    parseProxyHeader(buf);
  } catch (err) {
    if (err instanceof ProxyProtocolError) return err.code;
    throw err;
  }
  return 'accepted';
}

const TLS_HELLO_START = Buffer.from('160301020001', 'hex');

t.test('v2 LOCAL as HAProxy and the NLB send it for health checks', async (t) => {
  const h = v2Header({ command: 'LOCAL' });
  t.same(h, Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]));
  const r = parsed(Buffer.concat([h, TLS_HELLO_START]));
  t.equal(r.length, 16);
  t.same(r.info, { command: 'LOCAL', family: 'UNSPEC', tlvs: [], version: 2 });
});

t.test('v2 LOCAL ignores the address block but still reads the TLVs after it', async (t) => {
  const h = v2Header({ command: 'LOCAL', family: 'TCP4', sourceAddress: '9.9.9.9', sourcePort: 1, tlvs: [{ type: 0x05, value: Buffer.from('id') }], crc: true });
  const r = parsed(h);
  t.equal(r.info.command, 'LOCAL');
  t.equal(r.info.family, 'UNSPEC');
  t.equal(r.info.sourceAddress, undefined);
  t.same(r.info.tlvs.map((x) => x.type), [0x05, 0x03]);
  h[20] ^= 1; // inside the ignored address block, still covered by the CRC
  t.equal(code(h), 'BAD_CRC');
});

t.test('v2 PROXY TCP4 with ports; bytes after the header are not consumed', async (t) => {
  const h = v2Header({ sourceAddress: '192.0.2.10', destinationAddress: '10.1.2.3', sourcePort: 54321, destinationPort: 443 });
  t.equal(h.length, 28);
  const r = parsed(Buffer.concat([h, TLS_HELLO_START]));
  t.equal(r.length, 28);
  t.same(r.info, {
    command: 'PROXY',
    family: 'TCP4',
    sourceAddress: '192.0.2.10',
    destinationAddress: '10.1.2.3',
    sourcePort: 54321,
    destinationPort: 443,
    tlvs: [],
    version: 2,
  });
});

t.test('v2 PROXY TCP6 with ports, addresses in RFC 5952 text', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['::ffff:198.51.100.7', '::ffff:198.51.100.7'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
  ];
  for (const [input, text] of cases) {
    const r = parsed(v2Header({ family: 'TCP6', sourceAddress: input, destinationAddress: '2001:db8::443', sourcePort: 1, destinationPort: 65535 }));
    t.equal(r.length, 16 + 36);
    t.equal(r.info.family, 'TCP6');
    t.equal(r.info.sourceAddress, text, input);
    t.equal(r.info.destinationAddress, '2001:db8::443');
    t.equal(r.info.sourcePort, 1);
    t.equal(r.info.destinationPort, 65535);
  }
});

t.test('v2 UNIX and UNSPEC families', async (t) => {
  const unix = parsed(v2Header({ family: 'UNIX', sourceAddress: '/run/client.sock', destinationAddress: '/run/xks.sock' }));
  t.equal(unix.length, 16 + 216);
  t.match(unix.info, { command: 'PROXY', family: 'UNIX', sourceAddress: '/run/client.sock', destinationAddress: '/run/xks.sock' });
  t.equal(unix.info.sourcePort, undefined);

  const unspec = parsed(v2Header({ command: 'PROXY', family: 'UNSPEC' }));
  t.same(unspec.info, { command: 'PROXY', family: 'UNSPEC', tlvs: [], version: 2 });
});

t.test('AWS VPC endpoint TLV is extracted and all TLVs are kept in order', async (t) => {
  const r = parsed(
    v2Header({
      sourceAddress: '10.0.0.9',
      vpceId: 'vpce-0123456789abcdef0',
      tlvs: [
        { type: 0x01, value: Buffer.from('h2') }, // ALPN
        { type: 0xea, value: Buffer.from([0x02, 0xaa]) }, // another AWS subtype: kept, not an id
        { type: 0x04, value: Buffer.alloc(0) }, // NOOP, empty value
      ],
      crc: true,
    }),
  );
  t.equal(r.info.vpceId, 'vpce-0123456789abcdef0');
  t.same(r.info.tlvs.map((x) => x.type), [0xea, 0x01, 0xea, 0x04, 0x03]);
  t.same(r.info.tlvs[0].value, Buffer.from('\x01vpce-0123456789abcdef0', 'latin1'));
  t.same(r.info.tlvs[1].value, Buffer.from('h2'));
  t.same(r.info.tlvs[2].value, Buffer.from([0x02, 0xaa]));
  t.equal(r.info.tlvs[3].value.length, 0);
});

t.test('TLV values are copies, not views of the read buffer', async (t) => {
  const h = v2Header({ tlvs: [{ type: 0x05, value: Buffer.from('abc') }] });
  const r = parsed(h);
  h.fill(0);
  t.same(r.info.tlvs[0].value, Buffer.from('abc'));
});

t.test('ambiguous or broken AWS TLVs are rejected', async (t) => {
  t.equal(code(v2Header({ vpceId: 'vpce-1', tlvs: [{ type: 0xea, value: Buffer.from('\x01vpce-2', 'latin1') }] })), 'MALFORMED', 'two ids');
  t.equal(code(v2Header({ tlvs: [{ type: 0xea, value: Buffer.alloc(0) }] })), 'MALFORMED', 'no subtype');
  t.equal(code(v2Header({ vpceId: '' })), 'MALFORMED', 'empty id');
  t.equal(code(v2Header({ vpceId: 'vpce-\n1' })), 'MALFORMED', 'control character');
  t.equal(code(v2Header({ vpceId: 'vpce 1' })), 'MALFORMED', 'space');
});

t.test('CRC32C TLV: a good checksum is accepted, any flipped bit is rejected', async (t) => {
  const h = v2Header({ family: 'TCP6', sourceAddress: '2001:db8::7', sourcePort: 7, vpceId: 'vpce-0abc', crc: true });
  t.equal(parsed(h).info.sourceAddress, '2001:db8::7');
  for (let i = 12; i < h.length; i++) {
    if (i === 14 || i === 15) continue; // the length field: changing it moves the header's end
    if (i === h.length - 7) continue; // the CRC TLV's type: another type simply carries no checksum
    const bad = Buffer.from(h);
    bad[i] ^= 0x10;
    const c = code(bad);
    t.ok(c === 'BAD_CRC' || c === 'MALFORMED', `byte ${i} flipped -> ${c}`);
  }
  const wrong = Buffer.from(h);
  wrong.writeUInt32BE((wrong.readUInt32BE(wrong.length - 4) + 1) >>> 0, wrong.length - 4);
  t.equal(code(wrong), 'BAD_CRC');
});

t.test('CRC32C TLV must have 4 bytes and appear once', async (t) => {
  t.equal(code(v2Header({ tlvs: [{ type: 0x03, value: Buffer.alloc(3) }] })), 'MALFORMED');
  t.equal(code(v2Header({ tlvs: [{ type: 0x03, value: Buffer.alloc(4) }], crc: true })), 'MALFORMED');
});

t.test('every strict prefix of a valid header is incomplete', async (t) => {
  const headers = [
    v2Header({ command: 'LOCAL' }),
    v2Header({ sourceAddress: '1.2.3.4', sourcePort: 1111, destinationAddress: '5.6.7.8', destinationPort: 443 }),
    v2Header({ family: 'TCP6', sourceAddress: '2001:db8::1', vpceId: 'vpce-0123456789abcdef0', crc: true }),
    v2Header({ family: 'UNIX', sourceAddress: '/a', destinationAddress: '/b' }),
    v1Header('TCP4', '1.2.3.4', '5.6.7.8', 1111, 443),
    v1Header('TCP6', '2001:db8::1', '::1', 65535, 0),
    v1Header('UNKNOWN'),
  ];
  for (const h of headers) {
    let incomplete = 0;
    for (let n = 0; n < h.length; n++) if (parseProxyHeader(h.subarray(0, n)) === 'incomplete') incomplete++;
    t.equal(incomplete, h.length, `all ${h.length} prefixes of a v${h[0] === 0x0d ? 2 : 1} header`);
    t.equal(parsed(h).length, h.length);
  }
});

t.test('a connection that does not start with a PROXY signature is rejected at once', async (t) => {
  t.equal(code(TLS_HELLO_START.subarray(0, 1)), 'MALFORMED', 'TLS ClientHello');
  t.equal(code(Buffer.from('GET / HTTP/1.1\r\n')), 'MALFORMED');
  t.equal(code(Buffer.from('PROXX')), 'MALFORMED');
  t.equal(code(Buffer.from('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), 'MALFORMED');
  const h = v2Header({ command: 'LOCAL' });
  for (let i = 0; i < 12; i++) {
    const bad = Buffer.from(h);
    bad[i] ^= 0x01;
    t.equal(code(bad), 'MALFORMED', `signature byte ${i}`);
    t.equal(code(bad.subarray(0, i + 1)), 'MALFORMED', `signature byte ${i}, before the rest arrives`);
  }
});

t.test('v2 version, command, family and transport nibbles are checked', async (t) => {
  const at = (offset: number, value: number, base = v2Header({ sourceAddress: '1.2.3.4' })): Buffer => {
    const b = Buffer.from(base);
    b[offset] = value;
    return b;
  };
  for (const v of [0x01, 0x11, 0x31, 0xf1]) t.equal(code(at(12, v)), 'MALFORMED', `version byte 0x${v.toString(16)}`);
  for (const v of [0x22, 0x2f]) t.equal(code(at(12, v)), 'MALFORMED', `command byte 0x${v.toString(16)}`);
  t.equal(code(at(12, 0x22).subarray(0, 13)), 'MALFORMED', 'rejected as soon as byte 13 arrives');
  for (const v of [0x41, 0xf1, 0x13, 0x1f]) t.equal(code(at(13, v)), 'MALFORMED', `family byte 0x${v.toString(16)}`);
  t.equal(code(at(13, 0x12)), 'MALFORMED', 'UDP over IPv4 on a TCP listener');
  t.equal(code(at(13, 0x10)), 'MALFORMED', 'IPv4 with unspecified transport');
  t.equal(code(at(13, 0x12, v2Header({ command: 'LOCAL', family: 'TCP4' }))), 'accepted', 'LOCAL ignores the family');
});

t.test('v2 lengths: address block, TLV bounds and the 16 + 65535 limit', async (t) => {
  const tcp6AsTcp4 = v2Header({ sourceAddress: '1.2.3.4' });
  tcp6AsTcp4[13] = 0x21; // claims IPv6 but carries 12 address bytes
  t.equal(code(tcp6AsTcp4), 'MALFORMED', 'address block shorter than the family');

  const runsPast = v2Header({ tlvs: [{ type: 0x05, value: Buffer.from('abcd') }] });
  runsPast.writeUInt16BE(5, runsPast.length - 6); // TLV length beyond the header's end
  t.equal(code(runsPast), 'MALFORMED', 'TLV longer than the header');

  for (const extra of [1, 2]) {
    const h = v2Header({ sourceAddress: '1.2.3.4' });
    const padded = Buffer.concat([h, Buffer.alloc(extra)]);
    padded.writeUInt16BE(h.length - 16 + extra, 14);
    t.equal(code(padded), 'MALFORMED', `${extra} stray byte(s) after the last TLV`);
  }

  const max = v2Header({ sourceAddress: '1.2.3.4', tlvs: [{ type: 0xe0, value: Buffer.alloc(0xffff - 12 - 3, 7) }] });
  t.equal(max.length, V2_MAX_LENGTH);
  const r = parsed(Buffer.concat([max, Buffer.from('after')]));
  t.equal(r.length, V2_MAX_LENGTH, 'the largest possible header parses');
  t.equal(parseProxyHeader(max.subarray(0, V2_MAX_LENGTH - 1)), 'incomplete');
});

t.test('v1 TCP4, TCP6 and UNKNOWN', async (t) => {
  const line = Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1111 443\r\n');
  const r4 = parsed(Buffer.concat([line, TLS_HELLO_START]));
  t.equal(r4.length, line.length);
  t.same(r4.info, {
    command: 'PROXY',
    family: 'TCP4',
    sourceAddress: '1.2.3.4',
    destinationAddress: '5.6.7.8',
    sourcePort: 1111,
    destinationPort: 443,
    tlvs: [],
    version: 1,
  });

  const r6 = parsed(Buffer.from('PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n'));
  t.match(r6.info, { family: 'TCP6', sourceAddress: '2001:db8::1', destinationAddress: '::ffff:10.0.0.1', sourcePort: 0, destinationPort: 65535 });

  t.same(parsed(Buffer.from('PROXY UNKNOWN\r\n')), { info: { command: 'PROXY', family: 'UNSPEC', tlvs: [], version: 1 }, length: 15 });
  const longest = Buffer.from(`PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`);
  t.equal(longest.length, V1_MAX_LENGTH);
  t.equal(parsed(longest).length, V1_MAX_LENGTH, 'the spec\'s worst case of 107 bytes fits');
});

t.test('v1 without CRLF within 107 bytes is too large', async (t) => {
  const noEnd = Buffer.from(`PROXY UNKNOWN ${'x'.repeat(200)}`);
  t.equal(parseProxyHeader(noEnd.subarray(0, V1_MAX_LENGTH - 1)), 'incomplete');
  t.equal(code(noEnd.subarray(0, V1_MAX_LENGTH)), 'TOO_LARGE');
  t.equal(code(noEnd), 'TOO_LARGE');
  const crlfAt108 = Buffer.from(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_LENGTH - 15)}\r\n`);
  t.equal(crlfAt108.length, V1_MAX_LENGTH + 1);
  t.equal(code(crlfAt108), 'TOO_LARGE');
});

t.test('malformed v1 lines', async (t) => {
  const bad = [
    'PROXY TCP4 1.2.3.4 5.6.7.8 1111 443\n', // LF without CR
    'PROXY TCP4 1.2.3.4 5.6.7.8 1111 443\rX\n', // CR not before LF
    'PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n', // missing field
    'PROXY TCP4 1.2.3.4 5.6.7.8 1111 443 9\r\n', // extra field
    'PROXY TCP4  1.2.3.4 5.6.7.8 1111 443\r\n', // double space
    'PROXY tcp4 1.2.3.4 5.6.7.8 1111 443\r\n',
    'PROXY TCP5 1.2.3.4 5.6.7.8 1111 443\r\n',
    'PROXY UNKNOWNX\r\n',
    'PROXY TCP4 1.2.3.256 5.6.7.8 1111 443\r\n',
    'PROXY TCP4 01.2.3.4 5.6.7.8 1111 443\r\n',
    'PROXY TCP4 ::1 5.6.7.8 1111 443\r\n', // IPv6 under TCP4
    'PROXY TCP6 1.2.3.4 ::1 1111 443\r\n', // IPv4 under TCP6
    'PROXY TCP6 fe80::1%eth0 ::1 1111 443\r\n', // zone id
    'PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 0443 443\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1111 +443\r\n',
    'PROXY TCP4 1.2.3.4\t5.6.7.8 1111 443\r\n',
    'PROXY \r\n',
  ];
  for (const line of bad) t.equal(code(Buffer.from(line, 'latin1')), 'MALFORMED', JSON.stringify(line));
  t.equal(code(Buffer.from('PROXY UNKNOWN \xff\r\n', 'latin1')), 'MALFORMED', 'non-ASCII byte');
  t.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1111 443\r')), 'incomplete', 'CR waits for its LF');
});
