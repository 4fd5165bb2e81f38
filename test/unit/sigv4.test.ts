/**
 * verifySigV4 against requests signed by an independent signer (@smithy/signature-v4, see
 * test/helpers/sign.ts): what it must accept, and each tampered variant it must refuse with 401.
 */
import t, { type Test } from 'tap';
import { clearSigningKeyCache, verifySigV4, type SignedRequest, type SigV4Options } from '../../gateway/sigv4.js';
import { XksError } from '../../xks/errors.js';
import { signXksRequest } from '../helpers/sign.js';

const ORIGIN = 'https://xks.example.com:8443';
const PATH = '/demo/kms/xks/v1/keys/key-1/encrypt';
const BODY = '{"requestMetadata":{"kmsRequestId":"1","kmsOperation":"Encrypt"},"plaintext":"SGVsbG8="}';
const NOW = Date.UTC(2024, 4, 15, 12, 0, 0);
const MINUTE = 60_000;

const CRED1 = { accessKeyId: 'AKIAXKSTESTAAAAAAAAA', secretAccessKey: 'q8T0l5bW3v2Yk9Jx7R1c4Zp6Hs0Gm2Nd8Ef5Ua3Vb1w=' };
const CRED2 = { accessKeyId: 'AKIAXKSTESTBBBBBBBBBBBBBB', secretAccessKey: 'Zy7Wx6Vu5Ts4Rq3Po2Nm1Lk0Jh9Gf8Ed7Cb6Aa5Zz4Yy3Xx2W' };
const SECRETS = new Map([CRED1, CRED2].map((c) => [c.accessKeyId, c.secretAccessKey]));
const secretFor = (id: string): string | undefined => SECRETS.get(id);

interface SignOpts {
  cred?: { accessKeyId: string; secretAccessKey: string };
  path?: string;
  body?: string;
  region?: string;
  date?: Date;
  headers?: Record<string, string>;
  service?: string;
}

/** A signed request as Node's HTTP server would hand it over: lowercased headers, raw headers as sent. */
async function signed(o: SignOpts = {}): Promise<SignedRequest> {
  const cred = o.cred ?? CRED1;
  const path = o.path ?? PATH;
  const body = o.body ?? BODY;
  const sent = await signXksRequest({
    url: ORIGIN + path,
    body,
    accessKeyId: cred.accessKeyId,
    secretAccessKey: cred.secretAccessKey,
    region: o.region,
    date: o.date ?? new Date(NOW),
    headers: o.headers,
    service: o.service,
  });
  return fromWire(path, Object.entries(sent), Buffer.from(body));
}

/** Node's view of a request: header names keep their case in rawHeaders, lowercased in headers. */
function fromWire(path: string, pairs: [string, string][], body: Buffer): SignedRequest {
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  for (const [name, value] of pairs) {
    const wireName = name.replace(/(^|-)[a-z]/g, (c) => c.toUpperCase()); // Host, X-Amz-Date, …
    rawHeaders.push(wireName, value);
    headers[name.toLowerCase()] = value;
  }
  return { method: 'POST', path, headers, rawHeaders, body };
}

function withHeader(req: SignedRequest, name: string, value: string | undefined): SignedRequest {
  const headers = { ...req.headers, [name]: value };
  if (value === undefined) delete headers[name];
  const rawHeaders: string[] = [];
  for (let i = 0; i < req.rawHeaders!.length; i += 2) {
    if (req.rawHeaders![i]!.toLowerCase() !== name) rawHeaders.push(req.rawHeaders![i]!, req.rawHeaders![i + 1]!);
  }
  if (value !== undefined) rawHeaders.push(name, value);
  return { ...req, headers, rawHeaders };
}

const authOf = (req: SignedRequest): string => req.headers.authorization as string;
const withAuth = (req: SignedRequest, auth: string): SignedRequest => withHeader(req, 'authorization', auth);
const verify = (req: SignedRequest, opts: SigV4Options = {}) => verifySigV4(req, secretFor, { now: NOW, ...opts });

/** Refused with 401 AuthenticationFailedException, for the expected reason, and nothing secret in it. */
function rejects(t: Test, req: SignedRequest, reason: RegExp, opts: SigV4Options = {}): void {
  let caught: unknown;
  try {
    verify(req, opts);
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof XksError)) {
    t.fail(`expected an XksError, got ${String(caught)}`);
    return;
  }
  t.equal(caught.errorName, 'AuthenticationFailedException');
  t.equal(caught.status, 401);
  t.match(caught.message, reason);
  for (const text of [caught.message, caught.detail ?? '']) {
    for (const secret of SECRETS.values()) t.notOk(text.includes(secret), 'no secret in the error');
    t.notMatch(text, /[0-9a-f]{64}/i, 'no signature or key in the error');
  }
}

t.test('accepted: a request signed for kms-xks-proxy, and who signed it', async (t) => {
  const req = await signed();
  t.match(authOf(req), /SignedHeaders=host;x-amz-date, Signature=[0-9a-f]{64}$/);
  t.same(verify(req), { accessKeyId: CRED1.accessKeyId, region: 'us-east-1', date: '20240515' });
  t.equal(verifySigV4(req, secretFor, { now: NOW, regions: ['eu-west-1', 'us-east-1'] }).region, 'us-east-1');
});

t.test('accepted: any SignedHeaders set with host and x-amz-date, values canonicalized', async (t) => {
  const req = await signed({ headers: { 'Content-Type': 'application/json', 'X-Custom': '  a   b\t c ' } });
  t.match(authOf(req), /SignedHeaders=content-type;host;x-amz-date;x-custom,/);
  t.equal(verify(req).accessKeyId, CRED1.accessKeyId, 'with raw headers');
  t.equal(verify({ ...req, rawHeaders: undefined }).accessKeyId, CRED1.accessKeyId, 'with lowercased headers only');
});

t.test('accepted: a signed header sent twice is the values joined with a comma', async (t) => {
  const req = await signed({ headers: { 'x-multi': 'one,two' } });
  const pairs: [string, string][] = [];
  for (let i = 0; i < req.rawHeaders!.length; i += 2) {
    const name = req.rawHeaders![i]!;
    if (name.toLowerCase() === 'x-multi') pairs.push([name, 'one'], [name, ' two ']);
    else pairs.push([name, req.rawHeaders![i + 1]!]);
  }
  const twice = fromWire(PATH, pairs, req.body);
  twice.headers['x-multi'] = 'one,  two '; // Node joins repeats its own way; rawHeaders decide
  t.equal(verify(twice).accessKeyId, CRED1.accessKeyId);
});

t.test('accepted: two credential sets at once (rotation); each is itself, not the other', async (t) => {
  t.equal(verify(await signed({ cred: CRED1 })).accessKeyId, CRED1.accessKeyId);
  t.equal(verify(await signed({ cred: CRED2 })).accessKeyId, CRED2.accessKeyId);
  const crossed = await signed({ cred: { accessKeyId: CRED1.accessKeyId, secretAccessKey: CRED2.secretAccessKey } });
  rejects(t, crossed, /Signature does not match/);
});

t.test('an access key id given a new secret: the old secret no longer verifies (cache is per secret)', async (t) => {
  const req = await signed();
  t.equal(verify(req).accessKeyId, CRED1.accessKeyId, 'warms the signing-key cache');
  const after = () => verifySigV4(req, () => 'a-brand-new-secret-a-brand-new-secret-0123456', { now: NOW });
  t.throws(after, { errorName: 'AuthenticationFailedException', message: 'Signature does not match' });
  clearSigningKeyCache();
  t.equal(verify(req).accessKeyId, CRED1.accessKeyId, 'still verifies after the cache is cleared');
});

t.test('accepted within the clock skew, refused outside it (both directions), skew configurable', async (t) => {
  const early = await signed({ date: new Date(NOW - 4 * MINUTE) });
  const late = await signed({ date: new Date(NOW + 4 * MINUTE) });
  t.ok(verify(early));
  t.ok(verify(late));
  const past = await signed({ date: new Date(NOW - 6 * MINUTE) });
  const future = await signed({ date: new Date(NOW + 6 * MINUTE) });
  rejects(t, past, /clock skew/);
  rejects(t, future, /clock skew/);
  t.ok(verify(past, { maxSkewMs: 10 * MINUTE }), 'a wider window accepts it');
  rejects(t, early, /clock skew/, { maxSkewMs: MINUTE });
});

t.test('region: any by default, an allow-list when pinned', async (t) => {
  const req = await signed({ region: 'eu-central-1' });
  t.equal(verify(req).region, 'eu-central-1');
  t.equal(verify(req, { regions: ['eu-central-1'] }).region, 'eu-central-1');
  rejects(t, req, /region is not allowed/, { regions: ['us-east-1'] });
  rejects(t, req, /region is not allowed/, { regions: [] });
});

t.test('a query string is part of the canonical request', async (t) => {
  const path = `${PATH}?b=2&a=x%20y&a=w`;
  const req = await signed({ path });
  t.ok(verify(req));
  rejects(t, { ...req, path: `${PATH}?b=3&a=x%20y&a=w` }, /Signature does not match/);
  rejects(t, { ...req, path: `${PATH}?b=%E0%A4%A` }, /Malformed query/);
});

t.test('tampered requests are refused', async (t) => {
  const req = await signed({ headers: { 'content-type': 'application/json' } });
  t.ok(verify(req), 'the untampered request passes');

  const body = Buffer.from(req.body);
  body[10]! ^= 0x01;
  rejects(t, { ...req, body }, /Signature does not match/);
  rejects(t, { ...req, body: Buffer.concat([req.body, Buffer.from(' ')]) }, /Signature does not match/);
  rejects(t, { ...req, path: PATH.replace('key-1', 'key-2') }, /Signature does not match/);
  rejects(t, { ...req, path: `${PATH}?x=1` }, /Signature does not match/);
  rejects(t, { ...req, method: 'PUT' }, /Signature does not match/);
  rejects(t, withHeader(req, 'host', 'xks.example.com:9443'), /Signature does not match/);
  rejects(t, withHeader(req, 'content-type', 'text/plain'), /Signature does not match/);
});

t.test('credential scope: date, service, terminator', async (t) => {
  const req = await signed();
  const auth = authOf(req);
  rejects(t, withAuth(req, auth.replace('/20240515/', '/20240516/')), /does not match the credential date/);
  rejects(t, withHeader(req, 'x-amz-date', '20240516T120000Z'), /does not match the credential date/);
  rejects(t, withHeader(req, 'x-amz-date', '20240515T120001Z'), /Signature does not match/);
  rejects(t, await signed({ service: 'kms' }), /kms-xks-proxy\/aws4_request/);
  rejects(t, withAuth(req, auth.replace('/kms-xks-proxy/', '/kms-xks-proxY/')), /kms-xks-proxy\/aws4_request/);
  rejects(t, withAuth(req, auth.replace('/aws4_request,', '/aws4_requesT,')), /kms-xks-proxy\/aws4_request/);
  rejects(t, withAuth(req, auth.replace('/aws4_request,', '/aws4_request/x,')), /malformed SigV4/);
});

t.test('unknown access key id: the same reply as a wrong signature, after the same work', async (t) => {
  const unknown = { accessKeyId: 'AKIAXKSUNKNOWNAAAAAA', secretAccessKey: CRED1.secretAccessKey };
  const message = (req: SignedRequest) => {
    try {
      verify(req);
    } catch (err) {
      return (err as XksError).message;
    }
    return 'accepted';
  };
  const wrongSecret = { ...CRED1, secretAccessKey: CRED2.secretAccessKey };
  t.equal(message(await signed({ cred: unknown })), message(await signed({ cred: wrongSecret })), 'unknown id and bad signature: one message');
  t.equal(message(await signed({ cred: unknown })), 'Signature does not match');
  // The canonical request is still built for an unknown id (the HMAC is computed with a stand-in
  // secret), so a bad query string is found for both alike: no early exit tells ids apart.
  const badQuery = `${PATH}?a=%E0%A4%A`;
  t.equal(message(await signed({ cred: unknown, path: badQuery })), message(await signed({ cred: CRED1, path: badQuery })), 'the same later checks run for an unknown id');
});

t.test('signature: off by one hex digit, uppercase, short, long', async (t) => {
  const req = await signed();
  const auth = authOf(req);
  const sig = auth.slice(-64);
  const last = ((parseInt(sig.slice(-1), 16) + 1) % 16).toString(16);
  rejects(t, withAuth(req, auth.slice(0, -1) + last), /Signature does not match/);
  const first = ((parseInt(sig[0]!, 16) + 1) % 16).toString(16);
  rejects(t, withAuth(req, auth.slice(0, -64) + first + sig.slice(1)), /Signature does not match/);
  t.ok(/[a-f]/.test(sig), 'the signature has letters to uppercase');
  rejects(t, withAuth(req, auth.slice(0, -64) + sig.toUpperCase()), /malformed SigV4/);
  rejects(t, withAuth(req, auth.slice(0, -2)), /malformed SigV4/);
  rejects(t, withAuth(req, `${auth}00`), /malformed SigV4/);
});

t.test('SignedHeaders must list host and x-amz-date, sorted, each present in the request', async (t) => {
  const req = await signed({ headers: { 'content-type': 'application/json' } });
  const auth = authOf(req);
  const list = (value: string) => withAuth(req, auth.replace('SignedHeaders=content-type;host;x-amz-date', `SignedHeaders=${value}`));
  rejects(t, list('content-type;x-amz-date'), /must include host and x-amz-date/);
  rejects(t, list('content-type;host'), /must include host and x-amz-date/);
  rejects(t, list('host;content-type;x-amz-date'), /malformed SigV4/);
  rejects(t, list('content-type;host;host;x-amz-date'), /malformed SigV4/);
  rejects(t, list('Content-Type;host;x-amz-date'), /malformed SigV4/);
  rejects(t, list('authorization;host;x-amz-date'), /malformed SigV4/);
  rejects(t, list('content-type;host;;x-amz-date'), /malformed SigV4/);
  rejects(t, list(''), /malformed SigV4/);
  rejects(t, withHeader(req, 'content-type', undefined), /missing from the request/);
  rejects(t, { ...withHeader(req, 'content-type', undefined), rawHeaders: undefined }, /missing from the request/);
  rejects(t, withHeader(req, 'x-amz-date', undefined), /missing from the request/);
  rejects(t, withHeader(req, 'host', undefined), /missing from the request/);
});

t.test('X-Amz-Date must be YYYYMMDDTHHMMSSZ and a real instant', async (t) => {
  const req = await signed();
  for (const value of ['2024-05-15T12:00:00Z', '20240515T120000', '20240515t120000z', '20240515T1200000Z', '', '20240515T120000Z,20240515T120000Z']) {
    rejects(t, withHeader(req, 'x-amz-date', value), /X-Amz-Date/);
  }
  const bad = await signed();
  const feb30 = withAuth(withHeader(bad, 'x-amz-date', '20240230T120000Z'), authOf(bad).replace('/20240515/', '/20240230/'));
  rejects(t, feb30, /malformed X-Amz-Date/, { now: Date.UTC(2024, 2, 1, 12) });
  rejects(t, withHeader(req, 'x-amz-date', '20240515T246000Z'), /malformed X-Amz-Date/);
});

t.test('malformed Authorization headers: always a 401, never anything else', async (t) => {
  const req = await signed();
  const auth = authOf(req);
  const [, credential, signedHeaders, signature] = /^AWS4-HMAC-SHA256 (Credential=[^,]+), (SignedHeaders=[^,]+), (Signature=\w+)$/.exec(auth)!;
  t.ok(verify(withAuth(req, `AWS4-HMAC-SHA256 ${signature},${credential} ,  ${signedHeaders}`)), 'parts in any order, spaces optional');
  const cases: Record<string, string | undefined> = {
    missing: undefined,
    empty: '',
    'scheme only': 'AWS4-HMAC-SHA256',
    'scheme and space': 'AWS4-HMAC-SHA256 ',
    'other scheme': `Basic ${Buffer.from('a:b').toString('base64')}`,
    'lowercase scheme': auth.replace('AWS4-HMAC-SHA256', 'aws4-hmac-sha256'),
    'comma after scheme': auth.replace('AWS4-HMAC-SHA256 ', 'AWS4-HMAC-SHA256,'),
    'credential twice': `${auth}, ${credential}`,
    'signature twice': `${auth}, ${signature}`,
    'signed headers twice': `${auth}, ${signedHeaders}`,
    'unknown part': `${auth}, Foo=bar`,
    'empty part': `${auth},`,
    'no signature': `AWS4-HMAC-SHA256 ${credential}, ${signedHeaders}`,
    'no credential': `AWS4-HMAC-SHA256 ${signedHeaders}, ${signature}`,
    'no signed headers': `AWS4-HMAC-SHA256 ${credential}, ${signature}`,
    'part without =': `AWS4-HMAC-SHA256 ${credential}, SignedHeaders, ${signature}`,
    'credential with 4 parts': auth.replace('/us-east-1/', '/'),
    'credential with 6 parts': auth.replace('/us-east-1/', '/us-east-1/x/'),
    'empty access key id': auth.replace(`Credential=${CRED1.accessKeyId}/`, 'Credential=/'),
    'huge access key id': auth.replace(`Credential=${CRED1.accessKeyId}/`, `Credential=${'A'.repeat(200)}/`),
    'short scope date': auth.replace('/20240515/', '/2024515/'),
    'uppercase region': auth.replace('/us-east-1/', '/US-EAST-1/'),
    'empty region': auth.replace('/us-east-1/', '//'),
    huge: `AWS4-HMAC-SHA256 Credential=${'A'.repeat(100_000)}`,
    'huge signed headers list': auth.replace('SignedHeaders=host;x-amz-date', `SignedHeaders=${Array.from({ length: 40 }, (_, i) => `h${String(i).padStart(2, '0')}`).join(';')};host;x-amz-date`),
    garbage: '\u0000\u00ff=,=;/ \t',
  };
  for (const [name, value] of Object.entries(cases)) {
    t.test(name, async (t) => rejects(t, withHeader(req, 'authorization', value), /malformed SigV4/));
  }
  t.test('two Authorization headers', async (t) => {
    const twice = { ...req, rawHeaders: [...req.rawHeaders!, 'Authorization', auth] };
    rejects(t, twice, /malformed SigV4/);
  });
  t.test('an Authorization header that is not a string', async (t) => {
    rejects(t, { ...req, headers: { ...req.headers, authorization: [auth, auth] }, rawHeaders: undefined }, /malformed SigV4/);
  });
});

t.test('fuzz: mutated and random Authorization headers only ever give a 401', async (t) => {
  const req = await signed({ headers: { 'content-type': 'application/json' } });
  const auth = authOf(req);
  let seed = 0x5eed;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const alphabet = 'AWS4-HMAC-SHA256 Credential=/,;SignedHeaders=Signature=0123456789abcdef \t"\\\u0000\u00e9';
  let other = 0;
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    let header: string;
    if (i % 5 === 0) {
      header = Array.from({ length: rand(300) }, () => alphabet[rand(alphabet.length)]).join('');
    } else {
      const chars = [...auth];
      for (let n = 1 + rand(3); n > 0; n--) {
        const at = rand(chars.length + 1);
        const op = rand(3);
        if (op === 0) chars.splice(at, 1);
        else if (op === 1) chars.splice(at, 0, alphabet[rand(alphabet.length)]!);
        else chars[at] = alphabet[rand(alphabet.length)]!;
      }
      header = chars.join('');
    }
    try {
      verify(withAuth(req, header));
      accepted++;
    } catch (err) {
      if (!(err instanceof XksError) || err.errorName !== 'AuthenticationFailedException') other++;
    }
  }
  t.equal(other, 0, 'every refusal is an AuthenticationFailedException');
  // Only spacing around the parts is free; every accepted mutation kept the same parts.
  t.ok(accepted < 100, `few mutations are harmless (${accepted})`);
});

// The parse of the last Authorization header and of the last X-Amz-Date is kept for the next
// request (gateway/sigv4.ts): a header that differs only in what those shortcuts may skip must
// still get the full checks.
t.test('the kept parse of the last header never lets a changed header through', async (t) => {
  const req = await signed();
  const auth = authOf(req);
  const sig = /Signature=([0-9a-f]{64})$/.exec(auth)![1]!;
  t.equal(verify(req).accessKeyId, CRED1.accessKeyId, 'the header is read once');
  t.equal(verify(req).accessKeyId, CRED1.accessKeyId, 'and again from what was kept');
  rejects(t, withAuth(req, auth.replace(sig, sig.toUpperCase())), /malformed/, {});
  rejects(t, withAuth(req, auth.replace(sig, sig.slice(1) + (sig[0] === 'a' ? 'b' : 'a'))), /Signature does not match/);
  rejects(t, withAuth(req, auth.replace(sig, sig.slice(0, 63))), /malformed/);
  rejects(t, withAuth(req, `${auth}, Signature=${sig}`), /malformed/);
  rejects(t, withAuth(req, auth.replace('x-amz-date,', 'x-amz-date;x-other,')), /missing/);
  const other = await signed({ body: '{"other":true}' });
  t.equal(verify(other).accessKeyId, CRED1.accessKeyId, 'same shape, another signature: verified on its own');
  rejects(t, { ...other, body: Buffer.from(BODY) }, /Signature does not match/);
  // The same X-Amz-Date read before: its time is kept, the clock skew is still checked.
  rejects(t, req, /clock skew/, { now: NOW + 10 * MINUTE });
  t.equal(verify(req).accessKeyId, CRED1.accessKeyId);
});
