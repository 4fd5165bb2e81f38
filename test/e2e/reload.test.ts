// `xks reload`: a new server certificate and a new credential set take effect without a restart and
// without dropping live keep-alive connections (spec S8); a broken certificate is refused.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { stringify, parse } from 'yaml';
import { issueServerCert } from '../../appliance/certs/devpki.js';
import { newCredential } from '../../appliance/demo/provision.js';
import { startDemo, xksCommand, type RunningDemo, stopAndRemove } from '../helpers/demo.js';
import { XksClient } from '../helpers/xks-client.js';

const xks = (args: string[]) => promisify(execFile)(...xksCommand(args));
let d: RunningDemo;

t.before(async () => {
  d = await startDemo();
});
t.teardown(async () => {
  await stopAndRemove(d);
});

const health = { requestMetadata: { kmsRequestId: 'reload', kmsOperation: 'KmsHealthCheck' } };

function serverSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

t.test('new credentials and certificate apply on reload; live connections survive', async (t) => {
  const client = new XksClient(d.demo);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => {
    client.close();
    agent.destroy();
  });
  const first = await client.call('/health', health, { agent });
  t.equal(first.status, 200, 'served before the reload');
  const ca = readFileSync(d.demo.caFile);
  const serialBefore = await serverSerial(d.port, ca);

  // Rotation step 1: add a new credential set beside the old ones (spec S8).
  const credFile = join(d.dir, 'secrets', 'credentials-demo.yaml');
  const creds = parse(readFileSync(credFile, 'utf8')) as { credentials: unknown[] };
  const added = newCredential();
  writeFileSync(credFile, stringify({ credentials: [...creds.credentials, added] }), { mode: 0o600 });
  const refused = await client.call('/health', health, { credential: added });
  t.equal(refused.status, 401, 'the new set is unknown before the reload');

  // A new server certificate from the same CA.
  const tlsDir = join(d.dir, 'tls');
  const next = issueServerCert(
    { certPem: readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), keyPem: readFileSync(join(tlsDir, 'ca-key.pem'), 'utf8') },
    { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] },
  );
  writeFileSync(join(tlsDir, 'server-chain.pem'), next.certPem);
  writeFileSync(join(tlsDir, 'server-key.pem'), next.keyPem, { mode: 0o600 });

  const out = await xks(['reload', '--config', d.demo.configFile]);
  t.match(JSON.parse(out.stdout), { stores: 1 }, 'reload reports success');

  t.equal((await client.call('/health', health, { credential: added })).status, 200, 'the new credential set is accepted');
  t.equal((await client.call('/health', health)).status, 200, 'the old set still works during rotation');
  t.not(await serverSerial(d.port, ca), serialBefore, 'new connections get the new certificate');
  const again = await client.call('/health', health, { agent });
  t.equal(again.status, 200, 'the kept-alive connection from before the reload still serves');
});

t.test('a broken certificate is refused on reload; the running one stays', async (t) => {
  const tlsDir = join(d.dir, 'tls');
  const good = readFileSync(join(tlsDir, 'server-key.pem'));
  // A key that does not match the certificate.
  const other = issueServerCert(
    { certPem: readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), keyPem: readFileSync(join(tlsDir, 'ca-key.pem'), 'utf8') },
    { dnsNames: ['localhost'], ipAddresses: [] },
  );
  writeFileSync(join(tlsDir, 'server-key.pem'), other.keyPem, { mode: 0o600 });
  try {
    const err = await xks(['reload', '--config', d.demo.configFile]).then(
      () => undefined,
      (e: { stderr: string }) => e,
    );
    t.match(err?.stderr, /server\.tls: the new certificate and key cannot be loaded/, 'reload fails with a clear error');
  } finally {
    writeFileSync(join(tlsDir, 'server-key.pem'), good, { mode: 0o600 });
  }
  const client = new XksClient(d.demo);
  t.teardown(() => client.close());
  t.equal((await client.call('/health', health)).status, 200, 'still serving with the previous certificate');
});
