// A small XKS proxy on node:https that keeps the spec, except for the rules it is told to break:
// one flag per broken rule. `xks probe` must name exactly the broken rule and nothing else, so
// the server is otherwise correct, yet deliberately different from the appliance where the spec
// allows it (an oversized body is a 400 here, not a 501; no client-certificate gate).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createCa, issueServerCert } from '../../appliance/certs/issue.js';
import { verifySigV4 } from '../../gateway/sigv4.js';
import { XksError } from '../../xks/errors.js';
import { freePorts } from './demo.js';

/** Each flag breaks one rule; the value is the conformance rule id the probe must report. */
export const BROKEN_RULES = {
  /** Accepts URL-safe, unpadded, wrapped base64 (Node's lenient decoder). */
  lenientBase64: 'E2',
  /** Any X-Amz-Date is accepted. */
  noDateSkew: 'S5',
  /** CDIV leaves ciphertextMetadata out of the hash. */
  wrongCdiv: 'C1',
  /** The request's AAD is not bound into the tag. */
  aadNotBound: 'D5',
  /** ciphertextMetadata is not bound into the tag. */
  metadataNotBound: 'D3',
  /** GET on an API URI is answered 200. */
  okOnGet: 'T5',
  /** Errors are text/plain lines, not JSON. */
  textErrors: 'X3',
  /** A field it does not know is a 400. */
  rejectUnknownFields: 'M3',
  /** An unknown path prefix is a 401 (authentication before routing). */
  unknownPathUnauthorized: 'T11',
  /** A decrypt-only key encrypts. */
  noEncryptUsageCheck: 'K3',
  /** xksProxyFleetSize is a string. */
  badHealthShape: 'H2',
  /** The served chain holds, after the server certificate, a CA certificate that did not issue it. */
  chainBroken: 'T4',
  /** An oversized body: the connection is dropped without an answer. */
  bodyCapReset: 'T13',
} as const;

export type Broken = keyof typeof BROKEN_RULES;

export interface BrokenXks {
  endpoint: string;
  uriPath: string;
  region: string;
  accessKeyId: string;
  secret: string;
  caPem: string;
  keys: { encryptDecrypt: string; encryptOnly: string; decryptOnly: string; noUsage: string; disabled: string };
  close(): Promise<void>;
}

type Usage = 'ENCRYPT' | 'DECRYPT';
interface Key {
  material: Buffer;
  usage: Usage[];
  enabled: boolean;
}

const URI_PATH = '/broken/kms/xks/v1';
const ACCESS_KEY_ID = 'BROKENXKSPROBE234567A';
const SECRET = randomBytes(32).toString('base64');
const BODY_CAP = 64 * 1024;
const METADATA = Buffer.from([1]);

let pki: { caPem: string; certPem: string; keyPem: string; unrelatedCaPem: string } | undefined;
function testPki() {
  if (!pki) {
    const ca = createCa('Broken XKS Test CA');
    const leaf = issueServerCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    pki = { caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem, unrelatedCaPem: createCa('Unrelated Test CA').certPem };
  }
  return pki;
}

const invalid = (m: string) => new XksError('ValidationException', m);

export interface BrokenOptions {
  /** Answer this many requests 503 DependencyTimeoutException first, as a busy proxy may: not a
   *  broken rule (KMS retries), so the probe retries too and says so. */
  busyFirst?: number;
}

export async function startBrokenXks(broken: readonly Broken[] = [], opts: BrokenOptions = {}): Promise<BrokenXks> {
  const is = (flag: Broken) => broken.includes(flag);
  let busy = opts.busyFirst ?? 0;
  const keys = new Map<string, Key>([
    ['ed-key', { material: randomBytes(32), usage: ['ENCRYPT', 'DECRYPT'], enabled: true }],
    ['eo-key', { material: randomBytes(32), usage: ['ENCRYPT'], enabled: true }],
    ['do-key', { material: randomBytes(32), usage: ['DECRYPT'], enabled: true }],
    ['nu-key', { material: randomBytes(32), usage: [], enabled: true }],
    ['off-key', { material: randomBytes(32), usage: ['ENCRYPT', 'DECRYPT'], enabled: false }],
  ]);

  const b64 = (body: Record<string, unknown>, field: string, required: boolean): Buffer | undefined => {
    const v = body[field];
    if (v === undefined || v === null) {
      if (required) throw invalid(`${field} is required`);
      return undefined;
    }
    if (typeof v !== 'string') throw invalid(`${field} must be base64`);
    const d = Buffer.from(v, 'base64');
    if (!is('lenientBase64') && d.toString('base64') !== v) throw invalid(`${field} is not standard base64`);
    return d;
  };
  const known = (obj: Record<string, unknown>, fields: string[], where: string) => {
    if (!is('rejectUnknownFields')) return;
    for (const f of Object.keys(obj)) if (!fields.includes(f)) throw invalid(`unknown field ${where}${f}`);
  };
  const metadata = (body: Record<string, unknown>, required: string[]) => {
    const m = body.requestMetadata;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw invalid('requestMetadata is required');
    for (const f of required) if (typeof (m as Record<string, unknown>)[f] !== 'string') throw invalid(`requestMetadata.${f} is required`);
    known(m as Record<string, unknown>, ['awsPrincipalArn', 'awsSourceVpc', 'awsSourceVpce', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId', 'kmsViaService'], 'requestMetadata.');
  };
  const keyFor = (id: string, need: Usage[]) => {
    const key = keys.get(id);
    if (!key) throw new XksError('KeyNotFoundException', 'no such key');
    if (!key.enabled) throw new XksError('InvalidStateException', 'key disabled');
    for (const u of need) if (!key.usage.includes(u) && !(u === 'ENCRYPT' && is('noEncryptUsageCheck'))) throw new XksError('InvalidKeyUsageException', `key lacks ${u}`);
    return key;
  };
  const frame = (aad: Buffer, md: Buffer) => {
    const a = is('aadNotBound') ? Buffer.alloc(0) : aad;
    const m = is('metadataNotBound') ? Buffer.alloc(0) : md;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(a.length);
    return Buffer.concat([len, a, Buffer.from([m.length]), m]);
  };

  const ops = {
    health(body: Record<string, unknown>) {
      metadata(body, ['kmsRequestId', 'kmsOperation']);
      known(body, ['requestMetadata'], '');
      return { xksProxyFleetSize: is('badHealthShape') ? '1' : 1, xksProxyVendor: 'Broken Test', xksProxyModel: 'broken 1.0', ekmVendor: 'Node crypto', ekmFleetDetails: [{ id: 'mem-1', model: 'memory', healthStatus: 'ACTIVE' }] };
    },
    metadata(body: Record<string, unknown>, id: string) {
      metadata(body, ['awsPrincipalArn', 'kmsOperation', 'kmsRequestId']);
      known(body, ['requestMetadata'], '');
      const key = keys.get(id);
      if (!key) throw new XksError('KeyNotFoundException', 'no such key');
      return { keySpec: 'AES_256', keyUsage: key.usage, keyStatus: key.enabled ? 'ENABLED' : 'DISABLED' };
    },
    encrypt(body: Record<string, unknown>, id: string) {
      metadata(body, ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId']);
      known(body, ['requestMetadata', 'plaintext', 'encryptionAlgorithm', 'additionalAuthenticatedData', 'ciphertextDataIntegrityValueAlgorithm'], '');
      const plaintext = b64(body, 'plaintext', true)!;
      if (body.encryptionAlgorithm !== 'AES_GCM') throw invalid('encryptionAlgorithm must be AES_GCM');
      const aad = b64(body, 'additionalAuthenticatedData', false) ?? Buffer.alloc(0);
      const cdivAlg = body.ciphertextDataIntegrityValueAlgorithm;
      if (cdivAlg !== undefined && cdivAlg !== 'SHA_256') throw invalid('only SHA_256');
      const key = keyFor(id, cdivAlg ? ['ENCRYPT', 'DECRYPT'] : ['ENCRYPT']);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key.material, iv).setAAD(frame(aad, METADATA));
      const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
      const tag = c.getAuthTag();
      const cdivInput = Buffer.concat([aad, is('wrongCdiv') ? Buffer.alloc(0) : METADATA, iv, ciphertext, tag]);
      return {
        ciphertext: ciphertext.toString('base64'),
        ciphertextMetadata: METADATA.toString('base64'),
        initializationVector: iv.toString('base64'),
        authenticationTag: tag.toString('base64'),
        ...(cdivAlg ? { ciphertextDataIntegrityValue: createHash('sha256').update(cdivInput).digest('base64') } : {}),
      };
    },
    decrypt(body: Record<string, unknown>, id: string) {
      metadata(body, ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId']);
      known(body, ['requestMetadata', 'ciphertext', 'ciphertextMetadata', 'encryptionAlgorithm', 'additionalAuthenticatedData', 'initializationVector', 'authenticationTag'], '');
      const ciphertext = b64(body, 'ciphertext', true)!;
      if (body.encryptionAlgorithm !== 'AES_GCM') throw invalid('encryptionAlgorithm must be AES_GCM');
      const md = b64(body, 'ciphertextMetadata', false) ?? Buffer.alloc(0);
      const iv = b64(body, 'initializationVector', true)!;
      const tag = b64(body, 'authenticationTag', true)!;
      if (iv.length !== 12 && iv.length !== 16) throw invalid('IV must be 12 or 16 bytes');
      if (tag.length !== 16 || md.length > 20) throw invalid('tag must be 16 bytes, metadata at most 20');
      const aad = b64(body, 'additionalAuthenticatedData', false) ?? Buffer.alloc(0);
      const key = keyFor(id, ['DECRYPT']);
      try {
        const d = createDecipheriv('aes-256-gcm', key.material, iv).setAAD(frame(aad, md)).setAuthTag(tag);
        return { plaintext: Buffer.concat([d.update(ciphertext), d.final()]).toString('base64') };
      } catch {
        throw new XksError('InvalidCiphertextException', 'tag check failed');
      }
    },
  };

  const send = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const sendError = (res: ServerResponse, err: XksError) => {
    if (is('textErrors')) res.writeHead(err.status, { 'content-type': 'text/plain' }).end(`${err.errorName}: ${err.message}\n`);
    else send(res, err.status, { errorName: err.errorName, errorMessage: err.message });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size <= BODY_CAP) chunks.push(c);
    }
    const path = req.url ?? '';
    const m = /^\/broken\/kms\/xks\/v1\/(?:(health)|keys\/([A-Za-z0-9._-]{1,128})\/(metadata|encrypt|decrypt))$/.exec(path);
    if (!m) throw new XksError(is('unknownPathUnauthorized') && !path.startsWith(URI_PATH) ? 'AuthenticationFailedException' : 'InvalidUriPathException', 'no such path');
    if (req.method !== 'POST') {
      if (is('okOnGet') && req.method === 'GET') return send(res, 200, ops.health({ requestMetadata: { kmsRequestId: 'get', kmsOperation: 'get' } }));
      res.writeHead(405, { 'content-type': 'application/json', allow: 'POST' }).end(JSON.stringify({ errorName: 'MethodNotAllowed' }));
      return;
    }
    const body = Buffer.concat(chunks);
    if (busy > 0) {
      busy--;
      throw new XksError('DependencyTimeoutException', 'busy');
    }
    // The cap comes first: the signature covers the whole body, which is not kept above it.
    if (size > BODY_CAP) {
      if (is('bodyCapReset')) return void req.socket.destroy();
      throw invalid('request body too large');
    }
    verifySigV4({ method: 'POST', path, headers: req.headers, rawHeaders: req.rawHeaders, body }, (id) => (id === ACCESS_KEY_ID ? SECRET : undefined), is('noDateSkew') ? { maxSkewMs: Infinity } : {});
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString());
    } catch {
      throw invalid('not JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid('not a JSON object');
    const json = parsed as Record<string, unknown>;
    send(res, 200, m[1] ? ops.health(json) : ops[m[3] as 'metadata' | 'encrypt' | 'decrypt'](json, m[2]!));
  };

  const { certPem, keyPem, caPem, unrelatedCaPem } = testPki();
  const server = https.createServer({ cert: is('chainBroken') ? certPem + unrelatedCaPem : certPem, key: keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, err instanceof XksError ? err : new XksError('InternalException', 'internal error')));
  });
  const port = await freePorts(1);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    endpoint: `https://localhost:${port}`,
    uriPath: URI_PATH,
    region: 'us-east-1',
    accessKeyId: ACCESS_KEY_ID,
    secret: SECRET,
    caPem,
    keys: { encryptDecrypt: 'ed-key', encryptOnly: 'eo-key', decryptOnly: 'do-key', noUsage: 'nu-key', disabled: 'off-key' },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
