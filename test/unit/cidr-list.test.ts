import net from 'node:net';
import ipaddr from 'ipaddr.js';
import t from 'tap';
import { CidrList, validateCidr } from '../../xks/cidr-list.js';
import { prng } from '../helpers/rng.js';

t.test('IPv4 ranges', async (t) => {
  const list = new CidrList(['10.0.0.0/8', '192.168.1.0/24', '203.0.113.7/32', '198.51.100.9']);
  t.equal(list.size, 4);
  for (const a of ['10.0.0.0', '10.255.255.255', '10.1.2.3', '192.168.1.0', '192.168.1.255', '203.0.113.7', '198.51.100.9']) t.ok(list.has(a), a);
  for (const a of ['11.0.0.0', '9.255.255.255', '192.168.2.1', '192.168.0.255', '203.0.113.6', '203.0.113.8', '198.51.100.10']) t.notOk(list.has(a), a);
});

t.test('IPv6 ranges, at every word boundary', async (t) => {
  const list = new CidrList(['2001:db8::/32', 'fd00:1:2:3::/64', '2001:db8:ffff::/48', '::1/128', 'fe80::/10', 'abcd:ef01:2345:6789:abcd:ef01:2345:6780/124']);
  for (const a of ['2001:db8::', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '2001:DB8::1', 'fd00:1:2:3:ffff::1', '::1', 'fe80::1', 'febf::1', 'fe80::1%eth0', 'abcd:ef01:2345:6789:abcd:ef01:2345:678f']) {
    t.ok(list.has(a), a);
  }
  for (const a of ['2001:db9::', '2001:db7:ffff::', 'fd00:1:2:4::', '::2', '::', 'fec0::1', 'abcd:ef01:2345:6789:abcd:ef01:2345:6790']) t.notOk(list.has(a), a);
});

t.test('IPv4-mapped IPv6 addresses match the IPv4 ranges', async (t) => {
  const v4 = new CidrList(['1.2.3.0/24']);
  t.ok(v4.has('::ffff:1.2.3.4'));
  t.ok(v4.has('::ffff:102:304'), 'hex form of the same address');
  t.ok(v4.has('::FFFF:1.2.3.255'));
  t.notOk(v4.has('::ffff:1.2.4.4'));
  t.notOk(v4.has('::1.2.3.4'), 'IPv4-compatible (deprecated) is not mapped');
  t.ok(new CidrList(['::/96']).has('::1.2.3.4'), 'IPv4-compatible is ::/96');
  t.notOk(v4.has('64:ff9b::1.2.3.4'), 'NAT64 is not mapped');

  const mappedEntry = new CidrList(['::ffff:10.0.0.0/104']);
  t.ok(mappedEntry.has('10.9.8.7'), 'a mapped entry is an IPv4 range');
  t.ok(mappedEntry.has('::ffff:10.9.8.7'));
  t.notOk(mappedEntry.has('11.0.0.1'));

  const allV6 = new CidrList(['::/0']);
  t.ok(allV6.has('::ffff:1.2.3.4'), '::/0 contains the mapped range too');
  t.notOk(allV6.has('1.2.3.4'), 'but not plain IPv4');
});

t.test('/0, /32 and /128', async (t) => {
  const all4 = new CidrList(['0.0.0.0/0']);
  for (const a of ['0.0.0.0', '255.255.255.255', '127.0.0.1']) t.ok(all4.has(a), a);
  t.notOk(all4.has('::1'), 'IPv4 /0 is not IPv6');

  const all6 = new CidrList(['::/0']);
  for (const a of ['::', '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) t.ok(all6.has(a), a);
  t.notOk(all6.has('10.0.0.1'));

  const host4 = new CidrList(['127.0.0.1/32']);
  t.ok(host4.has('127.0.0.1'));
  t.notOk(host4.has('127.0.0.2'));
  t.notOk(host4.has('127.0.0.0'));

  const host6 = new CidrList(['2001:db8::5/128']);
  t.ok(host6.has('2001:db8::5'));
  t.ok(host6.has('2001:0db8:0000:0000:0000:0000:0000:0005'));
  t.notOk(host6.has('2001:db8::4'));
  t.notOk(host6.has('2001:db8::6'));
});

t.test('an empty list allows nothing; non-addresses never match', async (t) => {
  const none = new CidrList([]);
  t.equal(none.size, 0);
  t.notOk(none.has('127.0.0.1'));
  const all = new CidrList(['0.0.0.0/0', '::/0']);
  for (const a of ['', 'localhost', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', ' 1.2.3.4', '1.2.3.4/32', '/run/x.sock', ':::', '1::2::3', 'vpce-1']) {
    t.notOk(all.has(a), JSON.stringify(a));
  }
});

t.test('invalid entries are rejected with a message naming the entry', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['10.0.0.0/33', /prefix length above 32/],
    ['2001:db8::/129', /prefix length above 128/],
    ['10.0.0.0/', /not a number/],
    ['10.0.0.0/08', /not a number/],
    ['10.0.0.0/-1', /not a number/],
    ['10.0.0.0/8/8', /not a number/],
    ['10.0.0.1/8', /host bits set \(did you mean 10\.0\.0\.0\/8\?\)/],
    ['2001:db8::1/32', /host bits set \(did you mean 2001:db8::\/32\?\)/],
    ['10.0.0', /not an IPv4 or IPv6 address/],
    ['010.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['0x0a.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['fe80::1%eth0/128', /not an IPv4 or IPv6 address/],
    ['example.com/32', /not an IPv4 or IPv6 address/],
    [' 10.0.0.0/8', /not an IPv4 or IPv6 address/],
    ['', /not an IPv4 or IPv6 address/],
  ];
  for (const [entry, reason] of bad) {
    const message = validateCidr(entry);
    t.match(message, reason, entry);
    t.ok(message?.includes(`"${entry}"`), `reason names ${JSON.stringify(entry)}`);
    t.notOk(message?.includes('\n'), 'one line');
    t.throws(() => new CidrList(['127.0.0.1/32', entry]), { message: new RegExp(`^invalid CIDR "${entry.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`) });
  }
  for (const ok of ['0.0.0.0/0', '::/0', '10.0.0.0/8', '127.0.0.1', '::1', '2001:db8::/32', '::ffff:0:0/96']) t.equal(validateCidr(ok), null, ok);
});


t.test('every text form of an IPv6 address matches its /128 (checked against ipaddr.js)', async (t) => {
  const rand = prng(0xa11c);
  let failures = 0;
  for (let n = 0; n < 3000; n++) {
    // Random groups with runs of zeros, so '::' lands everywhere.
    const groups = Array.from({ length: 8 }, () => (rand() < 0.4 ? 0 : Math.floor(rand() * 0x10000)));
    const addr = new ipaddr.IPv6(groups);
    const full = groups.map((g) => g.toString(16)).join(':');
    const list = new CidrList([`${full}/128`]);
    const bytes = addr.toByteArray();
    const forms = [
      addr.toRFC5952String(),
      addr.toNormalizedString(),
      (addr as unknown as { toFixedLengthString(): string }).toFixedLengthString(), // present at run time, missing from the typings
      addr.toRFC5952String().toUpperCase(),
      `${addr.toRFC5952String()}%eth0`,
      // dotted IPv4 in the last 32 bits, with the six groups before it written out
      `${groups.slice(0, 6).map((g) => g.toString(16)).join(':')}:${bytes.slice(12).join('.')}`,
    ];
    const neighbour = new ipaddr.IPv6(groups.map((g, i) => (i === 7 ? g ^ 1 : g))).toRFC5952String();
    for (const form of forms) if (!list.has(form) && failures++ < 5) t.fail(`${form} not in ${full}/128`);
    if (list.has(neighbour) && failures++ < 5) t.fail(`${neighbour} wrongly in ${full}/128`);
  }
  t.equal(failures, 0);
});

t.test('has() accepts exactly the strings Node calls IP addresses', async (t) => {
  const rand = prng(0xbee);
  const all = new CidrList(['0.0.0.0/0', '::/0']);
  const alphabet = '0123456789abcdefABCDEF:.:::..';
  const seeds = ['::', '::1', '1::', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4', '::1.2.3.4', '1.2.3.4', 'fe80::1:2'];
  let failures = 0;
  for (let n = 0; n < 20_000; n++) {
    let s: string;
    if (rand() < 0.5) {
      s = Array.from({ length: Math.floor(rand() * 40) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    } else {
      const chars = [...seeds[Math.floor(rand() * seeds.length)]];
      for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) {
        const at = Math.floor(rand() * (chars.length + 1));
        const c = alphabet[Math.floor(rand() * alphabet.length)];
        if (rand() < 0.5) chars.splice(at, 0, c);
        else chars.splice(at, 1);
      }
      s = chars.join('');
    }
    if (all.has(s) !== (net.isIP(s) !== 0) && failures++ < 5) t.fail(`${JSON.stringify(s)}: has ${all.has(s)}, node isIP ${net.isIP(s)}`);
  }
  t.equal(failures, 0);
});
