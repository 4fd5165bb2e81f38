// Conformance of what the four APIs answer: the Encrypt reply's shape (E6-E10), the CDIV
// recomputed from it (C1, C4), decryption and what must break it (D3-D5, A2), the spec's sizes
// (E2, E4, T12), key usage per key (K2-K6) and the health body (H1, H2).
import { createHash, randomBytes } from 'node:crypto';
import { requestMetadata, type Reply, type XksApi } from './client.js';
import { allOf, describeReply, errorProblem, fail, okProblem, pass, skip, type Results, type Verdict } from './results.js';

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
/** Standard base64 exactly as RFC 4648 §4 writes it, or null. */
const strict = (v: unknown): Buffer | null => {
  if (typeof v !== 'string') return null;
  const d = Buffer.from(v, 'base64');
  return d.toString('base64') === v ? d : null;
};

interface Encrypted {
  ciphertext: string;
  ciphertextMetadata?: string;
  initializationVector: string;
  authenticationTag: string;
  ciphertextDataIntegrityValue?: string;
}

export async function cryptoChecks(api: XksApi, results: Results): Promise<void> {
  const t = api.target;
  const key = t.keys.encryptDecrypt;
  const plaintext = randomBytes(48);
  const aad = Buffer.from('xks-probe:aad:project=conformance');
  const encryptAt = (k: string) => api.path(`/keys/${k}/encrypt`);
  const decryptAt = (k: string) => api.path(`/keys/${k}/decrypt`);
  const encryptBody = (extra: Record<string, unknown> = {}) => ({ requestMetadata: requestMetadata(t, 'Encrypt'), plaintext: b64(plaintext), encryptionAlgorithm: 'AES_GCM', ...extra });
  const decryptBody = (e: Encrypted, extra: Record<string, unknown> = {}) => ({ requestMetadata: requestMetadata(t, 'Decrypt'), ...withoutCdiv(e), encryptionAlgorithm: 'AES_GCM', additionalAuthenticatedData: b64(aad), ...extra });

  const first = await api.call('encrypt with AAD and CDIV', encryptAt(key), encryptBody({ additionalAuthenticatedData: b64(aad), ciphertextDataIntegrityValueAlgorithm: 'SHA_256' }));
  const enc = first.status === 200 ? (first.json as Encrypted) : undefined;
  const needEnc = (fn: (e: Encrypted) => Promise<Verdict> | Verdict) => async () => (enc ? fn(enc) : fail(`encrypt with AAD and CDIV: got ${describeReply(first)}, want 200`));
  const field = (e: Encrypted, name: keyof Encrypted) => strict(e[name]);

  await results.check('encrypt', 'E6', 'Encrypt reply holds ciphertext, IV and tag in standard base64', needEnc((e) => {
    const bad = (['ciphertext', 'initializationVector', 'authenticationTag'] as const).filter((n) => field(e, n) === null);
    if (e.ciphertextMetadata !== undefined && field(e, 'ciphertextMetadata') === null) bad.push('ciphertextMetadata' as never);
    return bad.length ? fail(`not standard base64 or missing: ${bad.join(', ')}`) : pass('ciphertext, initializationVector, authenticationTag present');
  }));
  await results.check('encrypt', 'E7', 'ciphertext is as long as the plaintext', needEnc((e) => {
    const n = field(e, 'ciphertext')?.length;
    return n === plaintext.length ? pass(`${n} bytes`) : fail(`${n ?? 'no'} ciphertext bytes for ${plaintext.length} bytes of plaintext (split the tag off)`);
  }));
  await results.check('encrypt', 'E8', 'IV is 12 or 16 bytes', needEnc((e) => {
    const n = field(e, 'initializationVector')?.length;
    return n === 12 || n === 16 ? pass(`${n} bytes`) : fail(`${n ?? 'no'} bytes`);
  }));
  await results.check('encrypt', 'E9', 'authentication tag is 16 bytes', needEnc((e) => {
    const n = field(e, 'authenticationTag')?.length;
    return n === 16 ? pass('16 bytes') : fail(`${n ?? 'no'} bytes`);
  }));
  await results.check('encrypt', 'E10', 'ciphertextMetadata is at most 20 bytes', needEnc((e) => {
    if (e.ciphertextMetadata === undefined) return pass('none sent');
    const n = field(e, 'ciphertextMetadata')?.length;
    return n !== undefined && n <= 20 ? pass(`${n} byte(s)`) : fail(`${n ?? 'unreadable'} bytes: KMS rejects the whole reply above 20`);
  }));
  await results.check('encrypt', 'C1', 'CDIV equals SHA-256(AAD || metadata || IV || ciphertext || tag)', needEnc((e) => {
    if (e.ciphertextDataIntegrityValue === undefined) return fail('ciphertextDataIntegrityValueAlgorithm SHA_256 was sent but the reply has no ciphertextDataIntegrityValue (E5)');
    const parts = [aad, field(e, 'ciphertextMetadata') ?? Buffer.alloc(0), field(e, 'initializationVector'), field(e, 'ciphertext'), field(e, 'authenticationTag')];
    const expected = createHash('sha256').update(Buffer.concat(parts.map((p) => p ?? Buffer.alloc(0)))).digest('base64');
    return e.ciphertextDataIntegrityValue === expected ? pass('recomputed value matches') : fail(`got ${e.ciphertextDataIntegrityValue}, recomputed ${expected}: KMS fails the call`);
  }));
  await results.check('decrypt', 'D4', 'Decrypt returns the plaintext', needEnc(async (e) => {
    const r = await api.call('decrypt', decryptAt(key), decryptBody(e));
    const out = strict((r.json as { plaintext?: unknown } | undefined)?.plaintext);
    if (r.status !== 200) return fail(`got ${describeReply(r)}, want 200`);
    return out?.equals(plaintext) ? pass(`${out.length} bytes back`) : fail('the plaintext returned differs from the one encrypted');
  }));
  const refusedCiphertext = (label: string, r: Reply) => errorProblem(label, r, 400, ['InvalidCiphertextException']);
  await results.check('decrypt', 'D5', 'a changed or missing AAD does not decrypt', needEnc(async (e) => {
    const changed = await api.call('decrypt changed AAD', decryptAt(key), decryptBody(e, { additionalAuthenticatedData: b64('xks-probe:aad:project=conformancf') }));
    const missing = await api.call('decrypt without AAD', decryptAt(key), decryptBody(e, { additionalAuthenticatedData: undefined }));
    return allOf([refusedCiphertext('changed AAD', changed), refusedCiphertext('AAD left out', missing)], 'changed and missing AAD: 400 InvalidCiphertextException');
  }));
  await results.check('decrypt', 'D5', 'a changed ciphertext, IV or tag does not decrypt', needEnc(async (e) => {
    const problems: Array<string | null> = [];
    for (const name of ['ciphertext', 'initializationVector', 'authenticationTag'] as const) {
      const r = await api.call(`decrypt changed ${name}`, decryptAt(key), decryptBody({ ...e, [name]: flipLastBit(e[name]) }));
      problems.push(refusedCiphertext(`changed ${name}`, r));
    }
    return allOf(problems, 'one bit flipped in each: 400 InvalidCiphertextException');
  }));
  await results.check('decrypt', 'D3', 'a changed ciphertextMetadata does not decrypt', needEnc(async (e) => {
    const changed = e.ciphertextMetadata === undefined ? b64(Buffer.from([0])) : flipLastBit(e.ciphertextMetadata);
    const r = await api.call('decrypt changed metadata', decryptAt(key), decryptBody({ ...e, ciphertextMetadata: changed }));
    return allOf([refusedCiphertext(e.ciphertextMetadata === undefined ? 'metadata added' : 'metadata changed', r)], 'changed metadata: 400 InvalidCiphertextException');
  }));
  await results.check('decrypt', 'A2', 'metadata moved into the AAD does not decrypt', needEnc(async (e) => {
    const md = field(e, 'ciphertextMetadata');
    if (!md || md.length === 0) return skip('the endpoint sends no ciphertextMetadata');
    const r = await api.call('decrypt metadata moved into AAD', decryptAt(key), decryptBody({ ...e, ciphertextMetadata: undefined } as unknown as Encrypted, { additionalAuthenticatedData: b64(Buffer.concat([aad, md])) }));
    return allOf([refusedCiphertext('AAD || metadata with no metadata', r)], 'AAD || metadata sent as the AAD: 400 InvalidCiphertextException');
  }));
  await sizeChecks(api, results);
  await results.check('keys', 'C4', 'encrypt-only key: encrypts, refuses a CDIV with 400 InvalidKeyUsageException', async () => {
    const k = t.keys.encryptOnly;
    if (!k) return skip('no --encrypt-only-key given');
    const plain = await api.call('encrypt-only key', encryptAt(k), encryptBody());
    const cdiv = await api.call('encrypt-only key with CDIV', encryptAt(k), encryptBody({ ciphertextDataIntegrityValueAlgorithm: 'SHA_256' }));
    return allOf([okProblem('encrypt without CDIV', plain), errorProblem('encrypt with CDIV', cdiv, 400, ['InvalidKeyUsageException'])], 'without CDIV: 200; with CDIV: 400 InvalidKeyUsageException');
  });
  await keyChecks(api, results, enc);
  await healthCheck(api, results);
}

function flipLastBit(value: string | undefined): string {
  const bytes = Buffer.from(value ?? '', 'base64');
  if (bytes.length) bytes[bytes.length - 1]! ^= 1;
  return bytes.toString('base64');
}

function withoutCdiv(e: Encrypted): Omit<Encrypted, 'ciphertextDataIntegrityValue'> {
  const { ciphertextDataIntegrityValue: _cdiv, ...rest } = e;
  return rest;
}

/** The spec's minimum sizes must work end to end: encrypt, then decrypt back. */
async function sizeChecks(api: XksApi, results: Results): Promise<void> {
  const t = api.target;
  const key = t.keys.encryptDecrypt;
  const roundTrip = async (label: string, plaintext: Buffer, aad: Buffer | undefined, meta: Record<string, unknown>): Promise<string | null> => {
    const extra = aad ? { additionalAuthenticatedData: b64(aad) } : {};
    const e = await api.call(label, api.path(`/keys/${key}/encrypt`), { requestMetadata: requestMetadata(t, 'Encrypt', meta), plaintext: b64(plaintext), encryptionAlgorithm: 'AES_GCM', ...extra });
    if (e.status !== 200) return `${label} encrypt: got ${describeReply(e)}, want 200`;
    const enc = e.json as Encrypted;
    const d = await api.call(label, api.path(`/keys/${key}/decrypt`), { requestMetadata: requestMetadata(t, 'Decrypt', meta), ...withoutCdiv(enc), encryptionAlgorithm: 'AES_GCM', ...extra });
    if (d.status !== 200) return `${label} decrypt: got ${describeReply(d)}, want 200`;
    return strict((d.json as { plaintext?: unknown }).plaintext)?.equals(plaintext) ? null : `${label}: the plaintext came back changed`;
  };
  await results.check('sizes', 'E2', 'plaintext of 4300 bytes encrypts and decrypts', async () => allOf([await roundTrip('4300-byte plaintext', randomBytes(4300), undefined, {})], '4300 bytes round trip'));
  await results.check('sizes', 'E4', 'AAD of 8192 bytes encrypts and decrypts', async () => allOf([await roundTrip('8192-byte AAD', randomBytes(32), randomBytes(8192), {})], '8192-byte AAD round trip'));
  await results.check('sizes', 'T12', 'ARNs of 2048 characters are accepted', async () => {
    const arn = (prefix: string) => prefix + 'a'.repeat(2048 - prefix.length);
    const meta = { awsPrincipalArn: arn('arn:aws:iam::111122223333:role/'), kmsKeyArn: arn(`arn:aws:kms:${t.region}:111122223333:key/`) };
    return allOf([await roundTrip('2048-character ARNs', randomBytes(32), undefined, meta)], '2048-character awsPrincipalArn and kmsKeyArn round trip');
  });
}

type Usage = 'ENCRYPT' | 'DECRYPT';

async function keyChecks(api: XksApi, results: Results, enc: Encrypted | undefined): Promise<void> {
  const t = api.target;
  const metadata = (k: string) => api.call(`metadata ${k}`, api.path(`/keys/${k}/metadata`), { requestMetadata: requestMetadata(t, 'DescribeKey') });
  const usageProblem = async (label: string, k: string, want: Usage[]): Promise<string | null> => {
    const r = await metadata(k);
    const m = r.json as { keySpec?: unknown; keyUsage?: unknown; keyStatus?: unknown } | undefined;
    if (r.status !== 200 || !m) return `${label}: got ${describeReply(r)}, want 200`;
    const usage = Array.isArray(m.keyUsage) ? m.keyUsage : [];
    if (!Array.isArray(m.keyUsage) || usage.length > 10 || usage.some((u) => typeof u !== 'string' || u !== u.toUpperCase())) return `${label}: keyUsage ${JSON.stringify(m.keyUsage)} is not an array of at most 10 uppercase names`;
    for (const u of ['ENCRYPT', 'DECRYPT'] as const) {
      if (want.includes(u) !== usage.includes(u)) return `${label}: keyUsage ${JSON.stringify(usage)} ${want.includes(u) ? 'lacks' : 'holds'} ${u}`;
    }
    return null;
  };
  await results.check('keys', 'K2', 'GetKeyMetadata: AES_256, ENCRYPT and DECRYPT, ENABLED', async () => {
    const r = await metadata(t.keys.encryptDecrypt);
    const m = r.json as { keySpec?: unknown; keyStatus?: unknown } | undefined;
    if (r.status !== 200) return fail(`got ${describeReply(r)}, want 200`);
    const usage = await usageProblem('--key', t.keys.encryptDecrypt, ['ENCRYPT', 'DECRYPT']);
    return allOf(
      [m?.keySpec === 'AES_256' ? null : `keySpec ${JSON.stringify(m?.keySpec)}, want "AES_256"`, m?.keyStatus === 'ENABLED' ? null : `keyStatus ${JSON.stringify(m?.keyStatus)}, want "ENABLED"`, usage],
      'keySpec AES_256, keyUsage has ENCRYPT and DECRYPT, keyStatus ENABLED',
    );
  });
  await results.check('keys', 'K3', 'keyUsage of each key and its enforcement', async () => {
    const { encryptOnly, decryptOnly, noUsage } = t.keys;
    if (!encryptOnly && !decryptOnly && !noUsage) return skip('no --encrypt-only-key, --decrypt-only-key or --no-usage-key given');
    const problems: Array<string | null> = [];
    const refused = async (label: string, path: string, body: unknown) => errorProblem(label, await api.call(label, path, body), 400, ['InvalidKeyUsageException']);
    const encryptBody = () => ({ requestMetadata: requestMetadata(t, 'Encrypt'), plaintext: b64('xks probe'), encryptionAlgorithm: 'AES_GCM' });
    // A well-formed ciphertext of another key: usage is refused before any decryption is tried.
    const decryptBody = () => ({ requestMetadata: requestMetadata(t, 'Decrypt'), ...(enc ? withoutCdiv(enc) : { ciphertext: b64(randomBytes(16)), initializationVector: b64(randomBytes(12)), authenticationTag: b64(randomBytes(16)) }), encryptionAlgorithm: 'AES_GCM' });
    if (encryptOnly) {
      problems.push(await usageProblem('encrypt-only key', encryptOnly, ['ENCRYPT']));
      problems.push(await refused('decrypt with the encrypt-only key', api.path(`/keys/${encryptOnly}/decrypt`), decryptBody()));
    }
    if (decryptOnly) {
      problems.push(await usageProblem('decrypt-only key', decryptOnly, ['DECRYPT']));
      problems.push(await refused('encrypt with the decrypt-only key', api.path(`/keys/${decryptOnly}/encrypt`), encryptBody()));
    }
    if (noUsage) {
      problems.push(await usageProblem('no-usage key', noUsage, []));
      problems.push(await refused('encrypt with the no-usage key', api.path(`/keys/${noUsage}/encrypt`), encryptBody()));
      problems.push(await refused('decrypt with the no-usage key', api.path(`/keys/${noUsage}/decrypt`), decryptBody()));
    }
    return allOf(problems, 'usages reported as configured; operations a key lacks: 400 InvalidKeyUsageException');
  });
  await results.check('keys', 'K4', 'a disabled key reports DISABLED and does not encrypt', async () => {
    const k = t.keys.disabled;
    if (!k) return skip('no --disabled-key given');
    const r = await metadata(k);
    const status = (r.json as { keyStatus?: unknown } | undefined)?.keyStatus;
    const e = await api.call('encrypt with the disabled key', api.path(`/keys/${k}/encrypt`), { requestMetadata: requestMetadata(t, 'Encrypt'), plaintext: b64('xks probe'), encryptionAlgorithm: 'AES_GCM' });
    return allOf(
      [r.status === 200 && status === 'DISABLED' ? null : `metadata: got ${describeReply(r)} keyStatus ${JSON.stringify(status)}, want 200 DISABLED`, errorProblem('encrypt', e, 400, ['InvalidStateException'])],
      'metadata 200 keyStatus DISABLED; encrypt 400 InvalidStateException',
    );
  });
  await results.check('keys', 'K6', 'an unknown key is 404 KeyNotFoundException', async () => {
    const unknown = `xks-probe-no-such-key-${randomBytes(4).toString('hex')}`;
    const m = await metadata(unknown);
    const e = await api.call('encrypt unknown key', api.path(`/keys/${unknown}/encrypt`), { requestMetadata: requestMetadata(t, 'Encrypt'), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' });
    return allOf([errorProblem('metadata', m, 404, ['KeyNotFoundException']), errorProblem('encrypt', e, 404, ['KeyNotFoundException'])], 'metadata and encrypt: 404 KeyNotFoundException');
  });
}

async function healthCheck(api: XksApi, results: Results): Promise<void> {
  await results.check('health', 'H2', 'GetHealthStatus (no awsPrincipalArn) answers the spec body', async () => {
    const r = await api.call('health', api.path('/health'), { requestMetadata: requestMetadata(api.target, 'KmsHealthCheck') });
    if (r.status !== 200) return fail(`got ${describeReply(r)}, want 200`);
    const h = r.json as Record<string, unknown>;
    const details = h.ekmFleetDetails;
    const str = (n: string) => (typeof h[n] === 'string' && h[n] !== '' ? null : `${n} is not a non-empty string`);
    const fleet = Array.isArray(details) ? details : [];
    return allOf(
      [
        Number.isInteger(h.xksProxyFleetSize) && (h.xksProxyFleetSize as number) >= 1 ? null : `xksProxyFleetSize ${JSON.stringify(h.xksProxyFleetSize)} is not an integer >= 1`,
        str('xksProxyVendor'),
        str('xksProxyModel'),
        str('ekmVendor'),
        Array.isArray(details) && fleet.length >= 1 && fleet.length <= 10 ? null : 'ekmFleetDetails is not an array of 1 to 10 entries',
        fleet.every((d: { id?: unknown; model?: unknown; healthStatus?: unknown }) => typeof d?.id === 'string' && typeof d?.model === 'string' && ['ACTIVE', 'DEGRADED', 'UNAVAILABLE'].includes(d?.healthStatus as string))
          ? null
          : 'an ekmFleetDetails entry lacks id, model or a healthStatus of ACTIVE, DEGRADED or UNAVAILABLE',
      ],
      `fleet size ${String(h.xksProxyFleetSize)}, ${fleet.length} key manager(s): ${fleet.map((d: { id?: unknown; healthStatus?: unknown }) => `${String(d?.id)} ${String(d?.healthStatus)}`).join(', ')}`,
    );
  });
}
