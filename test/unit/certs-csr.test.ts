// xks cert csr's request, read back by openssl as a CA would: signature valid, CN and SAN the host
// name, the server-certificate extensions a staging CA copies; the key is the CSR's.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createPublicKey, createPrivateKey } from 'node:crypto';
import { createCsr } from '../../appliance/certs/csr.js';

for (const keyType of ['ec', 'rsa'] as const) {
  t.test(`${keyType} key`, async (t) => {
    const { csrPem, keyPem } = createCsr('xks.example.com', keyType);
    const text = execFileSync('openssl', ['req', '-noout', '-text', '-verify'], { input: csrPem, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    t.match(text, /Subject: CN ?= ?xks\.example\.com/);
    t.match(text, /X509v3 Subject Alternative Name:\s*\n\s*DNS:xks\.example\.com/);
    t.match(text, /CA:FALSE/);
    t.match(text, /TLS Web Server Authentication/);
    t.match(text, keyType === 'ec' ? /ecdsa-with-SHA256[\s\S]*prime256v1|prime256v1[\s\S]*ecdsa-with-SHA256/ : /sha256WithRSAEncryption/);
    const pubFromCsr = execFileSync('openssl', ['req', '-noout', '-pubkey'], { input: csrPem, encoding: 'utf8' });
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'pem' }).toString();
    t.equal(pubFromCsr.trim(), fromKey.trim(), 'the CSR carries the public half of the key');
  });
}
