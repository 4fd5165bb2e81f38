// A PKCS#10 certificate signing request for the proxy's host name, the way a public CA wants it:
// CN and a DNS SAN both naming the host (KMS checks the SAN; the CN is asked for too), plus the
// server-certificate extensions a staging CA can copy as they are (openssl x509 -copy_extensions).
// node-forge builds the ASN.1 and Node's crypto makes the key and the signature, so EC keys (which
// forge cannot sign with) and RSA keys take the same path.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

export type CsrKeyType = 'ec' | 'rsa';

export interface Csr {
  csrPem: string;
  /** Unencrypted PKCS#8 PEM: to be written with mode 0600. */
  keyPem: string;
}

const { asn1 } = forge;
const OID = {
  commonName: '2.5.4.3',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
};

const seq = (items: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
const set = (items: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
const oid = (o: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
const octets = (node: forge.asn1.Asn1) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, asn1.toDer(node).getBytes());
const fromDer = (der: Buffer) => asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
const bool = (v: boolean) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, v ? '\xff' : '\x00');
const bits = (byte: number, unused: number) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(unused, byte));

function extension(id: string, critical: boolean, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  return seq([oid(id), ...(critical ? [bool(true)] : []), octets(value)]);
}

function requestedExtensions(hostname: string, keyType: CsrKeyType): forge.asn1.Asn1 {
  const dnsName = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, hostname);
  // digitalSignature (bit 0); RSA also keyEncipherment (bit 2) for TLS 1.2 RSA key exchange clients.
  const keyUsage = keyType === 'rsa' ? bits(0xa0, 5) : bits(0x80, 7);
  return seq([
    extension(OID.subjectAltName, false, seq([dnsName])),
    extension(OID.basicConstraints, true, seq([])),
    extension(OID.keyUsage, true, keyUsage),
    extension(OID.extKeyUsage, false, seq([oid(OID.serverAuth)])),
  ]);
}

function newKey(keyType: CsrKeyType): { privateKey: KeyObject; publicKey: KeyObject } {
  return keyType === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
}

export function createCsr(hostname: string, keyType: CsrKeyType = 'ec'): Csr {
  const { privateKey, publicKey } = newKey(keyType);
  const cn = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, forge.util.encodeUtf8(hostname));
  const subject = seq([set([seq([oid(OID.commonName), cn])])]);
  const spki = fromDer(publicKey.export({ type: 'spki', format: 'der' }));
  const attributes = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [seq([oid(OID.extensionRequest), set([requestedExtensions(hostname, keyType)])])]);
  const info = seq([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x00'), subject, spki, attributes]);
  const infoDer = Buffer.from(asn1.toDer(info).getBytes(), 'binary');
  // ECDSA signatures come out DER-encoded (Node's default dsaEncoding), as X.509 wants them.
  const signature = sign('sha256', infoDer, privateKey);
  const algorithm =
    keyType === 'rsa' ? seq([oid(OID.sha256WithRSA), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]) : seq([oid(OID.ecdsaWithSha256)]);
  const csr = seq([info, algorithm, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + signature.toString('binary'))]);
  const der = asn1.toDer(csr).getBytes();
  const csrPem = forge.pem.encode({ type: 'CERTIFICATE REQUEST', body: der }, { maxline: 64 });
  return { csrPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
