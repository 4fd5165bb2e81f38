// Certificates made with node-forge for the demo and for tests: CAs, server and client
// certificates, including deliberately bad ones (expired, self-signed). Production certificates
// come from a CA that KMS trusts instead (see check.ts).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface CertAndKey {
  certPem: string;
  /** Unencrypted PKCS#8 PEM. */
  keyPem: string;
}

/** When the certificate is valid. `notBefore` defaults to 5 minutes ago (clock skew between
 *  hosts); `notAfter` wins over `days`. Past dates are allowed so tests can make expired certs. */
export interface Validity {
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
}

export interface CaOptions extends Validity {
  /** Subject O and C besides the CN (e.g. to imitate a real root's name in tests). */
  organization?: string;
  country?: string;
}

export interface ServerCertOptions extends Validity {
  dnsNames: string[];
  ipAddresses: string[];
  /** Defaults to the first DNS name, as KMS wants the proxy's name in both the CN and the SAN. */
  cn?: string;
}

export interface ClientCertOptions extends Validity {
  cn: string;
}

export interface SelfSignedOptions extends Validity {
  cn: string;
  dnsNames?: string[];
  ipAddresses?: string[];
}

const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
// 397 days: the longest leaf lifetime browsers accept; a sensible habit even for a dev CA.
const LEAF_DAYS = 397;

interface KeyPair {
  keyPem: string;
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

/** RSA 2048 with Node's native generator (about 0.1 s), handed to forge as PEM: forge's own
 *  generator is native only while nobody sets forge.options.usePureJavaScript, and takes
 *  seconds when it is not. */
function newKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { keyPem, privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

/** 16 random bytes, positive as DER INTEGER (top bit clear) and minimally encoded (next bit set). */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

function applyValidity(cert: forge.pki.Certificate, v: Validity, defaultDays: number): void {
  const from = v.notBefore ?? new Date(Date.now() - 5 * 60_000);
  cert.validity.notBefore = from;
  cert.validity.notAfter = v.notAfter ?? new Date(from.getTime() + (v.days ?? defaultDays) * DAY_MS);
}

interface Issuer {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

function parseIssuer(ca: CertAndKey): Issuer {
  return { cert: forge.pki.certificateFromPem(ca.certPem), key: forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey };
}

/** The issuer's own SKI, so the AKI matches however the issuer computed it. */
function authorityKeyId(issuer: forge.pki.Certificate): string {
  const ski = issuer.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  return ski?.subjectKeyIdentifier ? forge.util.hexToBytes(ski.subjectKeyIdentifier) : issuer.generateSubjectKeyIdentifier().getBytes();
}

function build(opts: {
  cn: string;
  organization?: string;
  country?: string;
  keys: KeyPair;
  issuer: Issuer | 'self';
  validity: Validity;
  defaultDays: number;
  extensions: object[];
}): CertAndKey {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = serialNumber();
  cert.publicKey = opts.keys.publicKey; // before setExtensions: the SKI is computed from it
  applyValidity(cert, opts.validity, opts.defaultDays);
  const subject = [
    ...(opts.country ? [{ name: 'countryName', value: opts.country }] : []),
    ...(opts.organization ? [{ name: 'organizationName', value: opts.organization }] : []),
    { name: 'commonName', value: opts.cn },
  ];
  cert.setSubject(subject);
  const extensions: object[] = [...opts.extensions, { name: 'subjectKeyIdentifier' }];
  if (opts.issuer === 'self') {
    cert.setIssuer(subject);
  } else {
    cert.setIssuer(opts.issuer.cert.subject.attributes);
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId(opts.issuer.cert) });
  }
  cert.setExtensions(extensions);
  cert.sign(opts.issuer === 'self' ? opts.keys.privateKey : opts.issuer.key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: opts.keys.keyPem };
}

const caExtensions = (pathLen?: number) => [
  { name: 'basicConstraints', cA: true, critical: true, ...(pathLen === undefined ? {} : { pathLenConstraint: pathLen }) },
  { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
];

const leafExtensions = (usage: { serverAuth?: true; clientAuth?: true }, dnsNames: string[], ipAddresses: string[]) => {
  const altNames = [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))];
  return [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', ...usage },
    ...(altNames.length ? [{ name: 'subjectAltName', altNames }] : []),
  ];
};

/** A self-signed root CA. */
export function createCa(cn: string, opts: CaOptions = {}): CertAndKey {
  const { organization, country } = opts;
  return build({ cn, organization, country, keys: newKeyPair(), issuer: 'self', validity: opts, defaultDays: CA_DAYS, extensions: caExtensions() });
}

/** An intermediate CA under `ca` (pathLen 0: it issues leaves only). */
export function issueIntermediateCa(ca: CertAndKey, cn: string, opts: Validity = {}): CertAndKey {
  return build({ cn, keys: newKeyPair(), issuer: parseIssuer(ca), validity: opts, defaultDays: CA_DAYS, extensions: caExtensions(0) });
}

export function issueServerCert(ca: CertAndKey, opts: ServerCertOptions): CertAndKey {
  const cn = opts.cn ?? opts.dnsNames[0];
  if (!cn) throw new Error('issueServerCert: give at least one DNS name (it becomes the CN)');
  return build({
    cn,
    keys: newKeyPair(),
    issuer: parseIssuer(ca),
    validity: opts,
    defaultDays: LEAF_DAYS,
    extensions: leafExtensions({ serverAuth: true }, opts.dnsNames, opts.ipAddresses),
  });
}

export function issueClientCert(ca: CertAndKey, opts: ClientCertOptions): CertAndKey {
  return build({
    cn: opts.cn,
    keys: newKeyPair(),
    issuer: parseIssuer(ca),
    validity: opts,
    defaultDays: LEAF_DAYS,
    extensions: leafExtensions({ clientAuth: true }, [], []),
  });
}

/** A self-signed leaf good for either end of TLS: what a CA-less impostor would present. */
export function selfSignedCert(opts: SelfSignedOptions): CertAndKey {
  return build({
    cn: opts.cn,
    keys: newKeyPair(),
    issuer: 'self',
    validity: opts,
    defaultDays: LEAF_DAYS,
    extensions: leafExtensions({ serverAuth: true, clientAuth: true }, opts.dnsNames ?? [], opts.ipAddresses ?? []),
  });
}
