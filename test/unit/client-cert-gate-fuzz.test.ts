/**
 * Bounded fuzz of the client-certificate reader with the real chain judge, seeded so a failure
 * replays exactly: mutated ClientHello + Certificate flights fed in random chunk sizes. Every
 * flight must end in a verdict without an exception, and a flight the reader passes must be one
 * whose Certificate the judge accepted (or an abbreviated handshake without one).
 */
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { createCa, issueClientCert, issueIntermediateCa } from '../../appliance/certs/devpki.js';
import { judgeClientChain } from '../../gateway/client-cert-gate.js';
import { ClientCertificateReader, type Verdict } from '../../gateway/tls-records.js';
import { prng } from '../helpers/rng.js';

const SEED = 0x7a1e5_c3;
const FLIGHTS = 20_000;
const CN = 'cks.kms.us-east-1.amazonaws.com';

/** mulberry32: small, fast, good enough to spread inputs. */
const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);

const u24 = (n: number) => Buffer.from([n >>> 16, (n >>> 8) & 0xff, n & 0xff]);
const message = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type]), u24(body.length), body]);
const records = (bytes: Buffer, size: number, type = 22) => {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    const body = bytes.subarray(i, i + size);
    out.push(Buffer.from([type, 3, 3, body.length >> 8, body.length & 0xff]), body);
  }
  return Buffer.concat(out);
};
const certificateMessage = (ders: Buffer[]) => {
  const list = Buffer.concat(ders.map((d) => Buffer.concat([u24(d.length), d])));
  return message(11, Buffer.concat([u24(list.length), list]));
};

const ca = createCa('Fuzz CA');
const mid = issueIntermediateCa(ca, 'Fuzz Intermediate');
const der = (pem: string) => new X509Certificate(pem).raw;
const chains = [[der(issueClientCert(ca, { cn: CN }).certPem)], [der(issueClientCert(mid, { cn: CN }).certPem), der(mid.certPem)], []];
const judgeOpts = { caCerts: [new X509Certificate(ca.certPem)], subjects: new Set([CN]) };

function flight(): Buffer {
  const hello = message(1, Buffer.from(Array.from({ length: 40 + int(400) }, () => int(256))));
  const rest = int(10) === 0 ? Buffer.alloc(0) : certificateMessage(chains[int(chains.length)]!);
  const size = [1, 5, 64, 512, 16384][int(5)]!;
  return Buffer.concat([records(Buffer.concat([hello, rest]), size), records(Buffer.from([1]), 1, 20)]);
}

function mutate(buf: Buffer): Buffer {
  const b = Buffer.from(buf);
  for (let m = 1 + int(4); m > 0; m--) {
    const at = int(b.length);
    switch (int(3)) {
      case 0:
        b[at] = int(256);
        break;
      case 1:
        b[at] ^= 1 << int(8);
        break;
      default:
        // Hit the framing bytes more often than chance would: record and message headers.
        b[Math.min(b.length - 1, int(12))] = int(256);
    }
  }
  const cut = int(4) === 0 ? int(b.length) : b.length;
  return b.subarray(0, cut);
}

t.test(`${FLIGHTS} mutated flights, random chunking: a verdict, never an exception`, async (t) => {
  const counts = { inspect: 0, pass: 0, reject: 0, accepted: 0 };
  for (let n = 0; n < FLIGHTS; n++) {
    const bytes = n % 10 === 0 ? flight() : mutate(flight());
    let judged: string | null | undefined;
    const reader = new ClientCertificateReader((chain) => (judged = judgeClientChain(chain, judgeOpts)));
    let verdict: Verdict = { kind: 'inspect' };
    try {
      for (let at = 0; at < bytes.length && verdict.kind === 'inspect'; ) {
        const end = Math.min(bytes.length, at + 1 + int(int(2) ? 8 : 4096));
        verdict = reader.feed(bytes.subarray(at, end));
        at = end;
      }
    } catch (err) {
      t.fail(`flight ${n} threw: ${(err as Error).message} (${bytes.toString('hex').slice(0, 80)}…)`);
      return;
    }
    counts[verdict.kind]++;
    if (judged === null) counts.accepted++;
    if (verdict.kind === 'pass' && judged !== undefined && judged !== null) {
      t.fail(`flight ${n} passed a refused chain (${judged})`);
      return;
    }
  }
  t.pass(`verdicts: ${JSON.stringify(counts)}`);
  t.ok(counts.reject > FLIGHTS / 4, 'mutations are refused');
  t.ok(counts.pass > 0 && counts.accepted > 0, 'intact flights still pass');
});
