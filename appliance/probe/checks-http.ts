// Conformance as seen at the HTTP layer: routing (T5, T11), SigV4 and its tampering (S1-S6),
// request validation (E2-E5, D2, M1-M4, X1, T12, T13), and the rules every reply must keep (T1, X3).
import { randomBytes } from 'node:crypto';
import { ERRORS } from '../../xks/errors.js';
import { requestMetadata, type XksApi } from './client.js';
import { allOf, describeReply, errorProblem, fail, okProblem, pass, type Results } from './results.js';

const AUTH = ['AuthenticationFailedException'];
const VALIDATION = ['ValidationException'];
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

export async function routingChecks(api: XksApi, results: Results): Promise<void> {
  const t = api.target;
  const key = t.keys.encryptDecrypt;
  const health = { requestMetadata: requestMetadata(t, 'KmsHealthCheck') };
  const notFound = ['InvalidUriPathException'];
  const prefix = t.uriPath.slice(0, -'/kms/xks/v1'.length);
  await results.check('routing', 'T11', 'unknown path prefix is 404 InvalidUriPathException', async () => {
    const r = await api.call('unknown prefix', `${prefix}/xks-probe-invalid/kms/xks/v1/health`, health);
    return allOf([errorProblem('signed POST to an unknown prefix', r, 404, notFound)], 'signed POST to <prefix>/xks-probe-invalid/kms/xks/v1/health: 404');
  });
  await results.check('routing', 'T11', 'unknown version or operation is 404 InvalidUriPathException', async () => {
    const version = await api.call('unknown version', `${prefix}/kms/xks/v9/health`, health);
    const op = await api.call('unknown operation', api.path(`/keys/${key}/sign`), { requestMetadata: requestMetadata(t, 'Sign') });
    return allOf(
      [errorProblem('/kms/xks/v9/health', version, 404, notFound), errorProblem(`/keys/${key}/sign`, op, 404, notFound)],
      '/kms/xks/v9/health and /keys/<id>/sign: 404',
    );
  });
  await results.check('routing', 'T5', 'GET on each API URI is 405', async () => {
    const problems: Array<string | null> = [];
    for (const op of ['/health', `/keys/${key}/metadata`, `/keys/${key}/encrypt`, `/keys/${key}/decrypt`]) {
      // Only the status is the spec's: it names no errorName for 405.
      const r = await api.call(`GET ${op}`, api.path(op), undefined, { method: 'GET', unrecorded: true });
      problems.push(r.status === 405 ? null : `GET ${op}: got ${r.status}, want 405`);
    }
    return allOf(problems, 'GET on health, metadata, encrypt, decrypt: 405');
  });
}

export async function authChecks(api: XksApi, results: Results): Promise<void> {
  const t = api.target;
  const op = api.path(`/keys/${t.keys.encryptDecrypt}/metadata`);
  const body = () => ({ requestMetadata: requestMetadata(t, 'DescribeKey') });
  const refused = async (label: string, opts: Parameters<XksApi['call']>[3]) => errorProblem(label, await api.call(label, op, body(), opts), 401, AUTH);
  const minutes = (n: number) => new Date(Date.now() + n * 60_000);

  await results.check('sigv4', 'S1', 'request without a signature is 401', async () =>
    allOf([await refused('no Authorization header', { sign: false })], 'no Authorization: 401 AuthenticationFailedException'),
  );
  await results.check('sigv4', 'S3', 'signature with a wrong secret is 401', async () =>
    allOf([await refused('wrong secret', { sign: { secret: `${t.secret}x` } })], 'wrong secret: 401'),
  );
  await results.check('sigv4', 'S6', 'unknown access key id is 401', async () =>
    allOf([await refused('unknown access key id', { sign: { accessKeyId: 'AKIDXKSPROBEUNKNOWN2' } })], 'unknown access key id: 401'),
  );
  await results.check('sigv4', 'S2', 'service other than kms-xks-proxy in the scope is 401', async () =>
    allOf([await refused('service "kms"', { sign: { service: 'kms' } })], 'scope signed for service "kms": 401'),
  );
  await results.check('sigv4', 'S2', 'region changed in the scope after signing is 401', async () => {
    const other = t.region === 'us-west-2' ? 'eu-west-1' : 'us-west-2';
    const swap = (h: Record<string, string>, b: Buffer) => ({ headers: { ...h, authorization: h.authorization!.replace(`/${t.region}/`, `/${other}/`) }, body: b });
    return allOf([await refused('region swapped', { afterSigning: swap })], `scope region changed to ${other}: 401`);
  });
  await results.check('sigv4', 'S5', 'X-Amz-Date more than 5 minutes off is 401', async () =>
    allOf(
      [await refused('signed 6 minutes in the past', { sign: { date: minutes(-6) } }), await refused('signed 6 minutes in the future', { sign: { date: minutes(6) } })],
      'signed 6 minutes in the past and in the future: 401',
    ),
  );
  await results.check('sigv4', 'S4', 'signed headers beyond host;x-amz-date are verified', async () => {
    // curl --aws-sigv4 (the AWS test client) signs content-type;host;x-amz-date.
    const curlLike = await api.call('content-type signed', op, body(), { sign: { signed: { 'content-type': 'application/json' } } });
    const changed = await api.call('signed header changed', op, body(), {
      sign: { signed: { 'x-xks-probe': 'signed-value' } },
      afterSigning: (h, b) => ({ headers: { ...h, 'x-xks-probe': 'changed-value' }, body: b }),
    });
    return allOf(
      [okProblem('content-type;host;x-amz-date signed', curlLike), errorProblem('a signed header changed after signing', changed, 401, AUTH)],
      'content-type;host;x-amz-date accepted; a signed header changed after signing: 401',
    );
  });
  await results.check('sigv4', 'S3', 'body changed after signing is 401', async () => {
    const tamper = (h: Record<string, string>, b: Buffer) => ({ headers: h, body: Buffer.from(b.toString().replace('DescribeKey', 'DescribeKez')) });
    return allOf([await refused('body changed', { afterSigning: tamper })], 'one byte of the body changed after signing: 401');
  });
}

export async function validationChecks(api: XksApi, results: Results): Promise<void> {
  const t = api.target;
  const key = t.keys.encryptDecrypt;
  const encryptPath = api.path(`/keys/${key}/encrypt`);
  const md = (extra: Record<string, unknown> = {}) => requestMetadata(t, 'Encrypt', extra);
  const encryptBody = (extra: Record<string, unknown> = {}) => ({ requestMetadata: md(), plaintext: b64('xks probe'), encryptionAlgorithm: 'AES_GCM', ...extra });
  const encrypt = (label: string, body: unknown) => api.call(label, encryptPath, body);
  const invalid = async (label: string, body: unknown) => errorProblem(label, await encrypt(label, body), 400, VALIDATION);

  await results.check('validation', 'E2', 'only strict standard base64 is accepted', async () => {
    // Bytes whose standard encoding holds both '+' and '/', so the URL-safe form differs.
    const bytes = Buffer.from([0xfb, 0xef, 0xff, 0xfe, 0x3f]);
    const std = b64(bytes); // "++//" family with one '=' of padding
    return allOf(
      [
        await invalid('URL-safe alphabet', encryptBody({ plaintext: std.replace(/\+/g, '-').replace(/\//g, '_') })),
        await invalid('padding left out', encryptBody({ plaintext: std.replace(/=+$/, '') })),
        await invalid('a line break inside', encryptBody({ plaintext: `${std.slice(0, 4)}\n${std.slice(4)}` })),
        await invalid('non-zero trailing bits', encryptBody({ plaintext: 'aGVsbG9=' })),
      ],
      'URL-safe, unpadded, wrapped and non-canonical base64: 400 ValidationException',
    );
  });
  await results.check('validation', 'E3', 'encryptionAlgorithm missing or not AES_GCM is 400 ValidationException', async () => {
    const { encryptionAlgorithm: _drop, ...missing } = encryptBody();
    return allOf(
      [await invalid('encryptionAlgorithm missing', missing), await invalid('encryptionAlgorithm "AES_GCM_256"', encryptBody({ encryptionAlgorithm: 'AES_GCM_256' }))],
      'missing and "AES_GCM_256": 400 ValidationException',
    );
  });
  await results.check('validation', 'E2', 'plaintext missing is 400 ValidationException', async () => {
    const { plaintext: _drop, ...missing } = encryptBody();
    return allOf([await invalid('plaintext missing', missing)], 'no plaintext: 400 ValidationException');
  });
  await results.check('validation', 'M4', 'requestMetadata missing or empty is 400 ValidationException', async () => {
    const problems: Array<string | null> = [];
    const bodies = { metadata: {}, encrypt: encryptBody(), decrypt: { ciphertext: b64('x'), encryptionAlgorithm: 'AES_GCM', initializationVector: b64(randomBytes(12)), authenticationTag: b64(randomBytes(16)) } };
    for (const [op, body] of Object.entries(bodies)) {
      const path = api.path(`/keys/${key}/${op}`);
      for (const [label, meta] of [['missing', undefined], ['empty', {}]] as const) {
        const r = await api.call(`${op} requestMetadata ${label}`, path, { ...body, requestMetadata: meta });
        problems.push(errorProblem(`${op} with requestMetadata ${label}`, r, 400, VALIDATION));
      }
    }
    return allOf(problems, 'metadata, encrypt and decrypt without or with empty requestMetadata: 400 ValidationException');
  });
  await results.check('validation', 'X1', 'health with {} or empty requestMetadata is 400 ValidationException', async () => {
    const path = api.path('/health');
    const empty = await api.call('health {}', path, {});
    const emptyMeta = await api.call('health empty requestMetadata', path, { requestMetadata: {} });
    return allOf([errorProblem('health {}', empty, 400, VALIDATION), errorProblem('health {"requestMetadata":{}}', emptyMeta, 400, VALIDATION)], '{} and {"requestMetadata":{}}: 400 ValidationException');
  });
  await results.check('validation', 'D2', 'decrypt with IV or tag missing or of a wrong size is 400', async () => {
    const path = api.path(`/keys/${key}/decrypt`);
    const base = { requestMetadata: requestMetadata(t, 'Decrypt'), ciphertext: b64(randomBytes(16)), encryptionAlgorithm: 'AES_GCM', initializationVector: b64(randomBytes(12)), authenticationTag: b64(randomBytes(16)) };
    // Which of the two names fits is the proxy's reading of the error table (both say "invalid").
    const names = ['ValidationException', 'InvalidCiphertextException'];
    const cases: Array<[string, Record<string, unknown>]> = [
      ['IV missing', { initializationVector: undefined }],
      ['IV of 8 bytes', { initializationVector: b64(randomBytes(8)) }],
      ['tag missing', { authenticationTag: undefined }],
      ['tag of 15 bytes', { authenticationTag: b64(randomBytes(15)) }],
    ];
    const problems: Array<string | null> = [];
    for (const [label, change] of cases) problems.push(errorProblem(label, await api.call(`decrypt ${label}`, path, { ...base, ...change, requestMetadata: requestMetadata(t, 'Decrypt') }), 400, names));
    return allOf(problems, 'IV or tag missing, 8-byte IV, 15-byte tag: 400');
  });
  await results.check('validation', 'E5', 'ciphertextDataIntegrityValueAlgorithm other than SHA_256 is refused', async () => {
    const r = await encrypt('CDIV algorithm SHA_512', encryptBody({ ciphertextDataIntegrityValueAlgorithm: 'SHA_512' }));
    // Any 400, or 501 "not supported": a 200 would claim an integrity value it did not compute.
    return r.status === 400 || r.status === 501 ? pass(`SHA_512: ${r.status}`) : fail(`SHA_512: got ${r.status}, want 400 (or 501)`);
  });
  await results.check('validation', 'M3', 'unknown fields are ignored', async () => {
    const r = await encrypt(
      'unknown fields',
      encryptBody({ requestMetadata: md({ SourceIdentity: 'xks-probe', kmsRecipientAttestationImageSha384: b64(randomBytes(48)), xksProbeFutureField: { nested: [1] } }), xksProbeTopLevelField: 'ignored' }),
    );
    return allOf([okProblem('unknown fields in requestMetadata and at the top level', r)], 'unknown fields in requestMetadata and at the top level: 200');
  });
  await results.check('validation', 'M1', 'kmsRequestId is opaque', async () => {
    const r = await encrypt('opaque kmsRequestId', encryptBody({ requestMetadata: md({ kmsRequestId: 'not-a-uuid: probe/1' }) }));
    return allOf([okProblem('kmsRequestId "not-a-uuid: probe/1"', r)], 'a kmsRequestId that is no UUID: 200');
  });
  await results.check('validation', 'M2', 'an unknown kmsOperation is not a validation error', async () => {
    const r = await encrypt('unknown kmsOperation', encryptBody({ requestMetadata: md({ kmsOperation: 'XksProbeFutureOperation' }) }));
    // Secondary authorization may deny it (403); it must not be called invalid.
    return r.status === 200 || r.status === 403 ? pass(`kmsOperation "XksProbeFutureOperation": ${r.status}`) : fail(`kmsOperation "XksProbeFutureOperation": got ${r.status}, want 200 (or 403)`);
  });
  await results.check('validation', 'T13', 'an oversized body gets a spec answer', async () => {
    // 256 KiB of plaintext: far above the spec's 4300 bytes. Allowed: done anyway (200), refused as
    // invalid (400 ValidationException) or as above this build's maximum (501), always as JSON.
    const big = encryptBody({ plaintext: b64(randomBytes(256 * 1024)) });
    let r;
    try {
      r = await api.call('oversized body', encryptPath, big);
    } catch (err) {
      return fail(`a 350 KB body: the connection failed without an answer (${(err as Error).message}); send 501 UnsupportedOperationException as JSON`);
    }
    if (r.status === 200) return pass('a 350 KB body: 200 (accepted)');
    // Whether the body is JSON is X3's to judge, as for every error reply.
    const problem = errorProblem('a 350 KB body', r, r.status === 501 ? 501 : 400, r.status === 501 ? ['UnsupportedOperationException'] : VALIDATION);
    return problem ? fail(`${problem} (or 501 UnsupportedOperationException, or 200)`) : pass(`a 350 KB body: ${describeReply(r)}`);
  });
}

// The spec's error table («Error codes»): errorName -> HTTP status. The spec names no error for
// 405 (T5), so the appliance's own name for it is not part of the table the probe holds others to.
const { MethodNotAllowed: _ours, ...SPEC_ERRORS } = ERRORS;
const ERROR_STATUS: Readonly<Record<string, number>> = SPEC_ERRORS;

const isJsonType = (v: unknown) => typeof v === 'string' && v.split(';')[0]!.trim().toLowerCase() === 'application/json';

/** Rules every reply keeps, judged over all replies the other checks recorded. */
export async function everyReplyChecks(api: XksApi, results: Results): Promise<void> {
  const oks = api.replies.filter((r) => r.reply.status === 200);
  const errors = api.replies.filter((r) => r.reply.status !== 200);
  await results.check('errors', 'T1', 'every 200 reply is JSON with Content-Type application/json', () => {
    const bad = oks.filter(({ reply }) => !isJsonType(reply.headers['content-type']) || reply.json === undefined);
    return bad.length ? fail(`${bad.length} of ${oks.length}, e.g. ${bad[0]!.label}: Content-Type ${String(bad[0]!.reply.headers['content-type'])}`) : pass(`${oks.length} replies`);
  });
  await results.check('errors', 'X3', 'every error reply is spec JSON: errorName of its status, printable errorMessage', () => {
    const problems: string[] = [];
    for (const { label, reply } of errors) {
      const body = reply.json as { errorName?: unknown; errorMessage?: unknown } | undefined;
      const typeOk = isJsonType(reply.headers['content-type']);
      if (!body || typeof body !== 'object' || typeof body.errorName !== 'string') {
        problems.push(`${label}: ${reply.status} without a JSON errorName (${JSON.stringify(reply.text.slice(0, 40))})`);
      } else if (ERROR_STATUS[body.errorName] !== reply.status) {
        problems.push(`${label}: errorName ${body.errorName} with status ${reply.status} (the spec's table says ${ERROR_STATUS[body.errorName] ?? 'no such name'})`);
      } else if (body.errorMessage !== undefined && (typeof body.errorMessage !== 'string' || body.errorMessage.length > 511 || /[^\x20-\x7e]/.test(body.errorMessage))) {
        problems.push(`${label}: errorMessage is not printable ASCII under 512 characters`);
      } else if (!typeOk) {
        problems.push(`${label}: Content-Type ${String(reply.headers['content-type'])}`);
      }
    }
    return problems.length ? fail(`${problems.length} of ${errors.length} error replies: ${problems.slice(0, 3).join('; ')}`) : pass(`${errors.length} error replies`);
  });
}
