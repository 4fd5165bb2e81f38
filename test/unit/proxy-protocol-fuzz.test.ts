/**
 * Bounded fuzz of the PROXY header parser with a seeded PRNG, so a failure replays exactly:
 * random bytes, random bytes behind a real signature, and mutated valid headers.
 */
import t from 'tap';
import { parseProxyHeader, ProxyProtocolError, V1_MAX_LENGTH } from '../../gateway/proxy-protocol.js';
import { v1Header, v2Header, V2_SIGNATURE } from '../helpers/proxy-header.js';
import { prng } from '../helpers/rng.js';

const SEED = 0x5eed1234;
const ITERATIONS = 120_000;

/** mulberry32: small, fast, good enough to spread inputs. */

const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];

const ADDR4 = ['1.2.3.4', '10.0.0.1', '255.255.255.255', '0.0.0.0'];
const ADDR6 = ['2001:db8::1', '::1', '::ffff:10.0.0.1', 'fe80::1:2:3:4'];

function validHeader(): Buffer {
  switch (int(6)) {
    case 0:
      return v2Header({ command: 'LOCAL', crc: rand() < 0.5 });
    case 1:
      return v2Header({ sourceAddress: pick(ADDR4), destinationAddress: pick(ADDR4), sourcePort: int(65536), destinationPort: 443, crc: rand() < 0.5 });
    case 2:
      return v2Header({
        family: 'TCP6',
        sourceAddress: pick(ADDR6),
        destinationAddress: pick(ADDR6),
        sourcePort: int(65536),
        vpceId: rand() < 0.5 ? 'vpce-0123456789abcdef0' : undefined,
        tlvs: Array.from({ length: int(4) }, () => ({ type: int(256) === 3 ? 4 : 0x20 + int(0xc0), value: bytes(int(20)) })).filter((x) => x.type !== 0xea),
        crc: rand() < 0.5,
      });
    case 3:
      return v2Header({ family: 'UNIX', sourceAddress: '/run/a.sock', destinationAddress: '/run/b.sock' });
    case 4:
      return rand() < 0.5 ? v1Header('TCP4', pick(ADDR4), pick(ADDR4), int(65536), 443) : v1Header('TCP6', pick(ADDR6), pick(ADDR6), int(65536), 443);
    default:
      return v1Header('UNKNOWN');
  }
}

function mutate(buf: Buffer): Buffer {
  let b = Buffer.from(buf);
  for (let m = 1 + int(4); m > 0; m--) {
    const at = int(b.length + 1);
    switch (int(6)) {
      case 0: // flip a bit
        if (b.length > 0) b[at % b.length] ^= 1 << int(8);
        break;
      case 1: // set a byte
        if (b.length > 0) b[at % b.length] = int(256);
        break;
      case 2: // insert bytes
        b = Buffer.concat([b.subarray(0, at), bytes(1 + int(4)), b.subarray(at)]);
        break;
      case 3: // delete bytes
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(4))]);
        break;
      case 4: // truncate
        b = b.subarray(0, at);
        break;
      default: // rewrite the v2 length field
        if (b.length >= 16) b.writeUInt16BE(int(65536), 14);
    }
  }
  // Sometimes trailing stream bytes, as a real first read would have.
  return rand() < 0.3 ? Buffer.concat([b, bytes(int(40))]) : b;
}

function input(): Buffer {
  const r = rand();
  if (r < 0.15) return bytes(int(300));
  if (r < 0.3) return Buffer.concat([V2_SIGNATURE, bytes(int(300))]);
  if (r < 0.4) {
    const printable = Buffer.from(Array.from({ length: int(130) }, () => 0x20 + int(0x5f)));
    return Buffer.concat([Buffer.from('PROXY '), printable, rand() < 0.5 ? Buffer.from('\r\n') : Buffer.alloc(0)]);
  }
  if (r < 0.5) return Buffer.concat([validHeader(), bytes(int(40))]);
  return mutate(validHeader());
}

t.test(`${ITERATIONS} random and mutated headers (seed 0x${SEED.toString(16)})`, async (t) => {
  const outcomes = new Map<string, number>();
  let failures = 0;
  const fail = (message: string, buf: Buffer): void => {
    if (failures++ < 5) t.fail(message, { input: buf.toString('hex') });
  };
  for (let i = 0; i < ITERATIONS; i++) {
    const buf = input();
    let outcome: string;
    try {
      const r = parseProxyHeader(buf);
      if (r === 'incomplete') {
        outcome = 'incomplete';
        // A buffer can only be incomplete while it is shorter than the header could be.
        const limit = buf[0] === 0x0d ? (buf.length >= 16 ? 16 + buf.readUInt16BE(14) : 16) : V1_MAX_LENGTH;
        if (buf.length >= limit) fail('incomplete past the header limit', buf);
      } else {
        outcome = 'accepted';
        if (!(r.length > 0 && r.length <= buf.length)) fail(`length ${r.length} outside 1..${buf.length}`, buf);
        // Self-delimiting: the header alone parses to the same length.
        const again = parseProxyHeader(buf.subarray(0, r.length));
        if (again === 'incomplete' || again.length !== r.length) fail('header alone does not parse the same', buf);
      }
    } catch (err) {
      if (!(err instanceof ProxyProtocolError)) {
        fail(`threw ${String(err)}`, buf);
        continue;
      }
      outcome = err.code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  t.equal(failures, 0, 'every input ended in a result, incomplete, or a ProxyProtocolError');
  // The generator must actually reach every kind of outcome, or the fuzz proves little.
  for (const o of ['accepted', 'incomplete', 'MALFORMED', 'BAD_CRC', 'TOO_LARGE']) {
    t.ok((outcomes.get(o) ?? 0) > 100, `${o}: ${outcomes.get(o) ?? 0}`);
  }
});
