// The client-certificate gate's two pure halves: the TLS 1.2 record/handshake reader (fed whole
// flights, messages split over records, records split over chunks down to single bytes, and
// everything it must refuse) and the chain judge (CA, intermediates, validity, CN, usage).
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { createCa, issueClientCert, issueIntermediateCa, issueServerCert, selfSignedCert, type CertAndKey } from '../../appliance/certs/devpki.js';
import { configSchema } from '../../appliance/config/schema.js';
import { judgeClientChain, MAX_CHAIN_LENGTH } from '../../gateway/client-cert-gate.js';
import {
  ClientCertificateReader,
  HANDSHAKE_FAILURE_ALERT,
  MAX_CERTIFICATE_MESSAGE,
  parseCertificateList,
  type Verdict,
} from '../../gateway/tls-records.js';

const DAY = 86_400_000;
const CN = 'cks.kms.us-east-1.amazonaws.com';
const der = (c: CertAndKey) => new X509Certificate(c.certPem).raw;

// ---- TLS bytes -------------------------------------------------------------------------------
const u24 = (n: number) => Buffer.from([n >>> 16, (n >>> 8) & 0xff, n & 0xff]);
const record = (type: number, body: Buffer, version = 0x0303) => {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt16BE(version, 1);
  h.writeUInt16BE(body.length, 3);
  return Buffer.concat([h, body]);
};
const message = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type]), u24(body.length), body]);
const certificateMessage = (ders: Buffer[]) => {
  const list = Buffer.concat(ders.map((d) => Buffer.concat([u24(d.length), d])));
  return message(11, Buffer.concat([u24(list.length), list]));
};
/** A ClientHello's bytes do not matter to the reader: only its framing does. */
const clientHello = (size = 300) => message(1, Buffer.alloc(size, 0x42));
const clientKeyExchange = message(16, Buffer.alloc(66, 7));
const ccs = record(20, Buffer.from([1]));
/** Handshake messages cut into records of at most `size` bytes each. */
const records = (messages: Buffer, size = 16384) => {
  const out: Buffer[] = [];
  for (let i = 0; i < messages.length; i += size) out.push(record(22, messages.subarray(i, i + size)));
  return Buffer.concat(out);
};

// ---- a small PKI -----------------------------------------------------------------------------
const clientCa = createCa('Gate Client CA');
const otherCa = createCa('Gate Other CA');
const intermediate = issueIntermediateCa(clientCa, 'Gate Intermediate CA');
const good = issueClientCert(clientCa, { cn: CN });
const viaIntermediate = issueClientCert(intermediate, { cn: CN });
const anchors = [new X509Certificate(clientCa.certPem)];
const subjects = new Set([CN]);
const judge = (chain: Buffer[], extra: { caCerts?: X509Certificate[]; subjects?: Set<string>; now?: () => Date } = {}) =>
  judgeClientChain(chain, { caCerts: anchors, subjects, ...extra });

/** Feeds `bytes` in the given chunk sizes (cycled); returns each verdict with the offset it came at. */
function feedAll(reader: ClientCertificateReader, bytes: Buffer, sizes: number[] = [bytes.length]): Array<{ start: number; end: number; verdict: Verdict }> {
  const out: Array<{ start: number; end: number; verdict: Verdict }> = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const end = Math.min(bytes.length, at + sizes[i % sizes.length]!);
    const verdict = reader.feed(bytes.subarray(at, end));
    out.push({ start: at, end, verdict });
    at = end;
    if (verdict.kind !== 'inspect') break;
  }
  return out;
}
const last = <T>(xs: T[]) => xs[xs.length - 1]!;
const recordingReader = (answer: string | null = null) => {
  const seen: Buffer[][] = [];
  const reader = new ClientCertificateReader((chain) => {
    seen.push(chain.map((c) => Buffer.from(c)));
    return answer;
  });
  return { reader, seen };
};

t.test('the alert is a fatal handshake_failure in a TLS 1.2 plaintext record', async (t) => {
  t.same([...HANDSHAKE_FAILURE_ALERT], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
});

t.test('reader: a whole flight passes at the Certificate, handing the judge the exact chain', async (t) => {
  const chain = [der(viaIntermediate), der(intermediate)];
  const flight = Buffer.concat([records(clientHello()), records(Buffer.concat([certificateMessage(chain), clientKeyExchange])), ccs]);
  const { reader, seen } = recordingReader();
  t.same(feedAll(reader, flight).map((v) => v.verdict), [{ kind: 'pass' }]);
  t.same(seen, [chain]);
});

t.test('reader: split every way, the verdict comes exactly with the last Certificate byte', async (t) => {
  const cert = certificateMessage([der(good)]);
  const hello = clientHello(40_000); // larger than a record: spans three
  for (const recordSize of [1, 7, 100, 16384]) {
    const head = Buffer.concat([records(hello, recordSize), records(cert, recordSize)]);
    const flight = Buffer.concat([head, records(clientKeyExchange), ccs]);
    for (const sizes of [[1], [3, 1, 2], [5], [1000], [flight.length]]) {
      const { reader, seen } = recordingReader();
      const verdicts = feedAll(reader, flight, sizes);
      const end = last(verdicts);
      t.same(end.verdict, { kind: 'pass' }, `records of ${recordSize}, chunks of ${sizes}`);
      t.ok(end.start < head.length && head.length <= end.end, 'with the chunk that completes the Certificate');
      t.ok(verdicts.slice(0, -1).every((v) => v.verdict.kind === 'inspect'));
      t.equal(seen.length, 1);
      t.same(seen[0], [der(good)]);
    }
  }
});

t.test('reader: several messages in one record, and a record split at every byte', async (t) => {
  const flight = record(22, Buffer.concat([clientHello(), certificateMessage([der(good)]), clientKeyExchange]));
  const { reader, seen } = recordingReader();
  const verdicts = feedAll(reader, flight, [1]);
  t.same(last(verdicts).verdict, { kind: 'pass' });
  t.equal(last(verdicts).end, 5 + clientHello().length + certificateMessage([der(good)]).length, 'judged at the Certificate, before the rest');
  t.equal(seen.length, 1);
});

t.test('reader: an abbreviated handshake (no Certificate) passes at the ChangeCipherSpec', async (t) => {
  const { reader, seen } = recordingReader();
  t.same(last(feedAll(reader, Buffer.concat([records(clientHello()), ccs]), [2])).verdict, { kind: 'pass' });
  t.equal(seen.length, 0);
});

t.test('reader: a client alert record is passed along while inspecting', async (t) => {
  const { reader } = recordingReader();
  t.same(reader.feed(Buffer.concat([records(clientHello()), record(21, Buffer.from([1, 0]))])), { kind: 'inspect' });
});

t.test('reader: the judge refusing becomes the verdict', async (t) => {
  const { reader } = recordingReader('subject CN "x" not allowed');
  const flight = records(Buffer.concat([clientHello(), certificateMessage([der(good)])]));
  t.same(reader.feed(flight), { kind: 'reject', reason: 'subject CN "x" not allowed' });
});

t.test('reader: everything it cannot vouch for is refused', async (t) => {
  const hello = records(clientHello());
  const certificateBody = (list: Buffer) => message(11, list);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty certificate list', Buffer.concat([hello, records(certificateMessage([]))]), /no client certificate/],
    ['SSLv2-style hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0]), /not a TLS record/],
    ['HTTP instead of TLS', Buffer.from('GET / HTTP/1.1\r\n\r\n'), /not a TLS record/],
    ['record version 4.0', record(22, clientHello(), 0x0400), /not a TLS record/],
    ['application data before the certificate', Buffer.concat([hello, record(23, Buffer.alloc(30))]), /record type 23/],
    ['heartbeat record', Buffer.concat([hello, record(24, Buffer.alloc(3))]), /record type 24/],
    ['zero-length handshake record', Buffer.concat([hello, record(22, Buffer.alloc(0))]), /record length 0/],
    ['oversized record', Buffer.concat([Buffer.from([22, 3, 3, 0x40, 0x01]), Buffer.alloc(10)]), /record length 16385/],
    ['first message not a ClientHello', records(certificateMessage([der(good)])), /instead of ClientHello/],
    ['ClientKeyExchange without Certificate', Buffer.concat([hello, records(clientKeyExchange)]), /message 16 instead of the client Certificate/],
    ['a second ClientHello', Buffer.concat([hello, hello]), /message 1 instead of the client Certificate/],
    ['ChangeCipherSpec inside a message', Buffer.concat([hello, record(22, certificateMessage([der(good)]).subarray(0, 20)), ccs]), /inside a handshake message/],
    ['Certificate over OpenSSL\'s limit', Buffer.concat([hello, record(22, Buffer.from([11, ...u24(MAX_CERTIFICATE_MESSAGE + 1)]))]), /of 102401 bytes/],
    ['ClientHello over OpenSSL\'s limit', record(22, Buffer.from([1, ...u24(131_397)])), /of 131397 bytes/],
    ['list length beyond the message', Buffer.concat([hello, records(certificateBody(Buffer.from([0, 0, 9, 0, 0, 1, 0xaa])))]), /list length does not match/],
    ['entry length beyond the list', Buffer.concat([hello, records(certificateBody(Buffer.from([0, 0, 4, 0, 0, 9, 0xaa])))]), /out of bounds/],
    ['zero-length entry', Buffer.concat([hello, records(certificateBody(Buffer.from([0, 0, 3, 0, 0, 0])))]), /out of bounds/],
    ['truncated entry length', Buffer.concat([hello, records(certificateBody(Buffer.from([0, 0, 2, 0, 0])))]), /truncated/],
    ['Certificate message of 2 bytes', Buffer.concat([hello, records(certificateBody(Buffer.from([0, 0])))]), /shorter than its list length/],
    ['garbage instead of DER', Buffer.concat([hello, records(certificateMessage([Buffer.from('not a certificate')]))]), /unparsable certificate/],
  ];
  for (const [name, bytes, reason] of cases) {
    for (const sizes of [[bytes.length], [1]]) {
      const reader = new ClientCertificateReader((chain) => judge(chain));
      const v = last(feedAll(reader, bytes, sizes)).verdict;
      t.equal(v.kind, 'reject', `${name} (chunks of ${sizes})`);
      if (v.kind === 'reject') t.match(v.reason, reason, name);
    }
  }
});

t.test('parseCertificateList: entries in order, sharing the message bytes', async (t) => {
  const body = Buffer.from([0, 0, 9, 0, 0, 1, 0xaa, 0, 0, 2, 0xbb, 0xcc]);
  t.same(parseCertificateList(body), [Buffer.from([0xaa]), Buffer.from([0xbb, 0xcc])]);
  t.same(parseCertificateList(Buffer.from([0, 0, 0])), []);
});

t.test('judge: a good leaf from the client CA, with or without intermediates', async (t) => {
  t.equal(judge([der(good)]), null);
  t.equal(judge([der(viaIntermediate), der(intermediate)]), null);
  t.equal(judge([der(viaIntermediate), der(good), der(intermediate)]), null, 'unrelated extras are ignored, order does not matter');
  t.equal(judge([der(viaIntermediate), der(intermediate)], { caCerts: [new X509Certificate(intermediate.certPem)] }), null, 'an intermediate may be the anchor');
  t.equal(judge([der(good)], { caCerts: [new X509Certificate(otherCa.certPem), anchors[0]!] }), null, 'any configured CA');
  t.match(judge([der(issueClientCert(clientCa, { cn: 'anyone' }))], { subjects: new Set() }), /not allowed/, 'no subjects configured: no CN passes (fails closed)');
});

t.test('judge: refuses the wrong issuer, time, CN or purpose', async (t) => {
  const now = Date.now();
  const cases: Array<[string, string | null, RegExp]> = [
    ['expired', judge([der(issueClientCert(clientCa, { cn: CN, notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }))]), /expired/],
    ['not yet valid', judge([der(issueClientCert(clientCa, { cn: CN, notBefore: new Date(now + DAY), days: 30 }))]), /not yet valid/],
    ['valid today, judged in two years', judge([der(good)], { now: () => new Date(now + 800 * DAY) }), /expired/],
    ['self-signed with the right CN', judge([der(selfSignedCert({ cn: CN }))]), /not issued by a trusted client CA/],
    ['from another CA', judge([der(issueClientCert(otherCa, { cn: CN }))]), /not issued by a trusted client CA/],
    ['the right CA, the wrong CN', judge([der(issueClientCert(clientCa, { cn: 'not-kms.example' }))]), /CN "not-kms.example" not allowed/],
    ['a server certificate', judge([der(issueServerCert(clientCa, { dnsNames: [CN], ipAddresses: [] }))]), /not for client authentication/],
    ['intermediate missing', judge([der(viaIntermediate)]), /not issued by a trusted client CA/],
    ['leaf posing as intermediate', judge([der(issueClientCert(good, { cn: CN })), der(good)]), /not issued by a trusted client CA/],
    [
      'expired intermediate',
      (() => {
        const old = issueIntermediateCa(clientCa, 'Old Intermediate', { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) });
        return judge([der(issueClientCert(old, { cn: CN, notBefore: new Date(now - 2 * DAY) })), der(old)]);
      })(),
      /intermediate certificate expired/,
    ],
    [
      'expired client CA',
      (() => {
        const oldCa = createCa('Old CA', { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) });
        const leaf = issueClientCert(oldCa, { cn: CN, notBefore: new Date(now - 2 * DAY) });
        return judge([der(leaf)], { caCerts: [new X509Certificate(oldCa.certPem)] });
      })(),
      /client CA certificate expired/,
    ],
    ['an impostor with another CN: its issuer is the reason given', judge([der(selfSignedCert({ cn: 'impostor' }))]), /not issued by a trusted client CA/],
    ['too long a chain', judge(Array.from({ length: MAX_CHAIN_LENGTH + 1 }, () => der(good))), /chain of 11/],
    ['no certificate', judge([]), /no client certificate/],
  ];
  for (const [name, reason, expected] of cases) t.match(reason, expected, name);
});

t.test('config: alertOnReject defaults on, and cannot go with TLS 1.3 only', async (t) => {
  const base = {
    proxy: { hostname: 'xks.example.com' },
    hsm: { nodes: [{ id: 'n1', module: '/x.so', slot: 0, pin: { env: 'PIN' } }] },
    keyStores: [{ name: 's', uriPathPrefix: '', credentialsFile: 'c.json' }],
  };
  const tls = (extra: object) => ({ ...base, server: { tls: { certFile: 'c', keyFile: 'k', clientAuth: { caFile: 'ca' }, ...extra } } });
  t.equal(configSchema.parse(tls({})).server.tls.clientAuth?.alertOnReject, true);
  const conflict = configSchema.safeParse(tls({ minVersion: 'TLSv1.3' }));
  t.notOk(conflict.success);
  t.same(conflict.error?.issues[0]?.path, ['server', 'tls', 'clientAuth', 'alertOnReject']);
  t.ok(configSchema.safeParse(tls({ minVersion: 'TLSv1.3', clientAuth: { caFile: 'ca', alertOnReject: false } })).success);
});
