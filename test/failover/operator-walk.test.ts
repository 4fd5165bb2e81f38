// The README's operator walk, end to end on SoftHSM2 and real files, in production mode: xks init,
// a staging CA of our own (openssl, as an operator would), cert csr → sign → cert install, xks check,
// xks serve, doctor, status; then a certificate renewal under load with 0 failed requests, doctor
// catching each broken setup it claims to check, the control socket kept by its instance, fault
// injection refused, and a clean stop (the whole process group signalled) without node warnings.
// In test/failover because of the zero-failure load step: it runs with the other deadline-bound
// tests, one file at a time, so no other test's load eats the 200 ms HSM budget.
import t from 'tap';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { createCa, issueIntermediateCa, issueServerCert } from '../../appliance/certs/devpki.js';
import { freePorts, xksCommand, type DemoJson } from '../helpers/demo.js';
import { runLoad } from '../helpers/load.js';
import { LABELS, makeTestHsm, SOFTHSM_MODULE, waitFor, type TestHsm } from '../helpers/softhsm.js';

const run = promisify(execFile);
const xks = (args: string[]) => run(...xksCommand(args));
/** Exit code, stdout and stderr of a command expected to fail. */
const xksFails = (args: string[]) =>
  xks(args).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

let hsm: TestHsm;
let dir = '';
let etc = '';
let configFile = '';
let port = 0;
let serve: ChildProcess | undefined;
let serveOut = '';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A staging root as `openssl req -x509` makes it by default (CA:TRUE, self-signed). */
function stagingCa(): { cert: string; key: string } {
  const cert = join(dir, 'staging-ca.pem');
  const key = join(dir, 'staging-ca.key');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=Example Staging Root', '-days', '30']);
  return { cert, key };
}

/** xks cert csr, then the staging CA signs it as a CA would (copying the requested extensions). */
async function newCertificate(ca: { cert: string; key: string }, out: string): Promise<{ chain: string; key: string }> {
  await xks(['cert', 'csr', '--host', 'localhost', '--out', out, '--force']);
  const chain = join(out, 'localhost.pem');
  openssl(['x509', '-req', '-in', join(out, 'localhost.csr'), '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '20', '-copy_extensions', 'copyall', '-out', chain]);
  return { chain, key: join(out, 'localhost.key') };
}

function servedSerial(caFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(caFile) }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.end();
    });
    s.on('error', reject);
  });
}

async function doctor(config: string): Promise<Array<{ name: string; verdict: string; detail: string }>> {
  const r = await xksFails(['doctor', '--config', config, '--json']);
  return JSON.parse(r.stdout) as Array<{ name: string; verdict: string; detail: string }>;
}

/** A copy of the working configuration with `mutate` applied, in the same directory. */
function variant(name: string, mutate: (c: any) => void): string {
  const c = parse(readFileSync(configFile, 'utf8'));
  mutate(c);
  const file = join(etc, `${name}.yaml`);
  writeFileSync(file, stringify(c), { mode: 0o640 });
  return file;
}

let ca: { cert: string; key: string };

t.before(async () => {
  hsm = await makeTestHsm({ nodes: 2 });
  dir = hsm.dir;
  etc = join(dir, 'etc');
  port = await freePorts(4);
  ca = stagingCa();
});

t.teardown(async () => {
  if (serve && serve.exitCode === null) serve.kill('SIGKILL');
  hsm?.cleanup();
});

t.test('init writes a production skeleton with safe modes and prints the next steps', async (t) => {
  const nodes = hsm.hsm.nodes.flatMap((n) => ['--node', `${n.id},token=${n.tokenLabel},SOFTHSM2_CONF=${n.env['SOFTHSM2_CONF']}`]);
  const r = await xks([
    'init', '--name', 'prod', '--dir', etc, '--host', 'localhost', '--module', SOFTHSM_MODULE, '--pin-file', hsm.hsm.nodes[0]!.pin.file!,
    ...nodes, '--port', String(port), '--run-dir', join(dir, 'run'), '--log-dir', join(dir, 'log'), '--staging-root', ca.cert,
  ]);
  configFile = join(etc, 'prod.yaml');
  t.match(r.stdout, /xks cert csr[\s\S]*xks cert install[\s\S]*xks keys create[\s\S]*kms-config[\s\S]*AWS KMS/, 'next steps in order');
  const c = parse(readFileSync(configFile, 'utf8'));
  t.equal(c.mode, 'production');
  t.same(c.server.tls.stagingRoots, [ca.cert]);
  const credFile = join(etc, c.keyStores[0].credentialsFile);
  t.equal(statSync(credFile).mode & 0o777, 0o600, 'credentials 0600');
  t.equal(statSync(join(etc, 'secrets')).mode & 0o777, 0o700, 'secrets directory 0700');
  const creds = parse(readFileSync(credFile, 'utf8')).credentials;
  t.match(creds[0].accessKeyId, /^[A-Z2-7]{20,30}$/, 'access key id in the spec format');
  t.ok(creds[0].secretAccessKey.length >= 43, 'secret of at least 43 characters');
  t.not(r.stdout.includes(creds[0].secretAccessKey), true, 'the secret is not printed');
  // What `xks keys create` will do: a key KMS can use (the token already holds it), and test-friendly ports.
  c.keyStores[0].keys = [{ id: 'key-1', label: LABELS.aes }];
  c.metrics.port = port + 1;
  c.hsm.probeIntervalMs = 300;
  writeFileSync(configFile, stringify(c), { mode: 0o640 });
  const again = await xksFails(['init', '--name', 'prod', '--dir', etc, '--host', 'localhost', '--module', SOFTHSM_MODULE, '--token', 'x', '--pin-file', hsm.hsm.nodes[0]!.pin.file!]);
  t.equal(again.code, 2, 'a second init refuses to overwrite');
  t.match(again.stderr, /exists.*--force/);
});

t.test('before the certificate: check says what to do; cert csr → staging CA → cert install; check accepts it', async (t) => {
  const before = await xksFails(['check', '--config', configFile]);
  t.equal(before.code, 2, 'configuration error exit code');
  t.match(before.stderr, /xks cert csr.*xks cert install/);

  const out = join(dir, 'csr');
  mkdirSync(out);
  const cert = await newCertificate(ca, out);
  t.equal(statSync(cert.key).mode & 0o777, 0o600, 'the private key is 0600');
  t.match(execFileSync('openssl', ['req', '-in', join(out, 'localhost.csr'), '-noout', '-text', '-verify'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }), /Subject: CN ?= ?localhost[\s\S]*DNS:localhost/);

  const checked = await xksFails(['cert', 'check', cert.chain, '--key', cert.key, '--host', 'localhost']);
  t.equal(checked.code, 1, 'without the staging root it is not trusted');
  t.match(checked.stdout, /ROOT_NOT_FOUND/);
  const staged = await xks(['cert', 'check', cert.chain, '--key', cert.key, '--config', configFile]);
  t.match(staged.stdout, /OK for staging only: KMS will not accept it/);

  const inst = await xks(['cert', 'install', '--config', configFile, '--chain', cert.chain, '--key', cert.key, '--reason', 'first certificate']);
  t.match(inst.stdout, /no running appliance: they take effect at the next start/);
  const c = parse(readFileSync(configFile, 'utf8'));
  t.equal(statSync(join(etc, c.server.tls.keyFile)).mode & 0o777, 0o600, 'installed key 0600');

  const ok = await xks(['check', '--config', configFile]);
  t.match(ok.stdout, /valid;.*STAGING.*logged in to 2 HSM node\(s\)/);
  t.match(ok.stderr, /STAGING/, 'the staging root is reported loudly');
});

t.test('xks check catches a wrong PIN (exit 3) and says when it does not log in', async (t) => {
  const wrongPin = join(dir, 'wrong.pin');
  writeFileSync(wrongPin, '11112222\n', { mode: 0o600 });
  // Both nodes required: with the default hsm.minNodesAtStart of 1, serve would start on hsm-1.
  const bad = variant('wrong-pin', (c) => {
    c.hsm.nodes[1].pin.file = wrongPin;
    c.hsm.minNodesAtStart = 2;
  });
  const r = await xksFails(['check', '--config', bad]);
  t.equal(r.code, 3, 'credential/PIN exit code');
  t.match(r.stderr, /hsm-2.*CKR_PIN_INCORRECT/);
  t.notMatch(r.stderr, /11112222/, 'never the PIN');
  const offline = await xks(['check', '--config', bad, '--no-hsm']);
  t.match(offline.stdout, /not contacted.*wrong PIN is not detected/);
  const served = await xksFails(['serve', '--config', bad]);
  t.equal(served.code, 3, 'serve exits 3 on a wrong PIN: the unit does not restart it');
  t.match(served.stderr, /1 of 2 HSM nodes started, hsm.minNodesAtStart is 2: HSM node hsm-2: login failed: CKR_PIN_INCORRECT/);
});

t.test('serve in production mode; doctor all OK but the staging root; status readable', async (t) => {
  serve = spawn(...xksCommand(['serve', '--config', configFile]), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  serve.stdout!.on('data', (b: Buffer) => (serveOut += b));
  serve.stderr!.on('data', (b: Buffer) => (serveOut += b));
  await waitFor('xks proxy ready', () => serveOut.includes('xks proxy ready') || serve!.exitCode !== null, 30_000);
  t.equal(serve.exitCode, null, `serving: ${serveOut.slice(-500)}`);
  t.match(serveOut, /STAGING: the server certificate chains to a root from server.tls.stagingRoots/, 'the log says KMS will not accept it');

  const results = await doctor(configFile);
  const names = new Set(results.map((r) => r.name));
  for (const n of ['configuration', 'file modes', 'certificate', 'dns', 'tls', 'hsm hsm-1', 'hsm hsm-2', 'idle timeouts', 'fleet size', 'clock']) t.ok(names.has(n), `doctor checks ${n}`);
  t.same(results.filter((r) => r.verdict === 'FAIL'), [], 'nothing fails');
  const warns = results.filter((r) => r.verdict === 'WARN').map((r) => r.name);
  t.ok(warns.every((n) => n === 'certificate' || n === 'clock'), `only the staging root and the clock may warn: ${warns}`);
  t.ok(results.some((r) => r.name === 'certificate' && /STAGING/.test(r.detail)), 'doctor reports the staging root');
  t.ok(results.some((r) => r.name === 'tls' && /TLSv1\.2 handshake/.test(r.detail)) && results.some((r) => r.name === 'tls' && /TLSv1\.3 handshake/.test(r.detail)), 'TLS 1.2 and 1.3');
  t.ok(results.some((r) => r.name === 'hsm hsm-1' && /round trip [\d.]+ ms/.test(r.detail)), 'HSM latency');

  const text = (await xks(['status', '--config', configFile])).stdout;
  t.match(text, /last probe \d+ (s|min) ago \(\d{4}-\d\d-\d\dT/, 'last probe readable');
  t.match(text, /Certificate: CN=localhost, expires \d{4}-\d\d-\d\d \(\d+ days left\), chain ends at staging root/);
  t.match(text, /STAGING/);
  t.match(text, /store1 +\/store1\/kms\/xks\/v1 +enabled +1 key\(s\) +1 credential set\(s\), file changed/);
  t.notMatch(text, /\b1\d{12}\b/, 'no epoch milliseconds');
  const json = JSON.parse((await xks(['status', '--config', configFile, '--json'])).stdout);
  t.match(json.nodes[0].lastProbeAt, /^\d{4}-\d\d-\d\dT.*Z$/);
  t.equal(json.certificate.anchor, 'staging root');
});

t.test('cert install under load: 0 failed requests, new connections get the new certificate', async (t) => {
  const c = parse(readFileSync(configFile, 'utf8'));
  const cred = parse(readFileSync(join(etc, c.keyStores[0].credentialsFile), 'utf8')).credentials[0];
  const demo = {
    endpoint: `https://localhost:${port}`,
    uriPath: '/store1/kms/xks/v1',
    region: 'us-east-1',
    accessKeyId: cred.accessKeyId,
    secretAccessKey: cred.secretAccessKey,
    caFile: ca.cert,
    keys: { encryptDecrypt: 'key-1' },
  } as unknown as DemoJson;
  const before = await servedSerial(ca.cert);
  const out = join(dir, 'renew');
  mkdirSync(out);
  const next = await newCertificate(ca, out);
  let installed: Promise<{ stdout: string }> | undefined;
  const report = await runLoad({
    demo,
    rate: 200,
    durationMs: 5000,
    onTick: (ms) => {
      if (ms > 1500 && !installed) installed = xks(['cert', 'install', '--config', configFile, '--chain', next.chain, '--key', next.key, '--reason', 'renewal']);
    },
  });
  const inst = await installed!;
  t.match(inst.stdout, /the running appliance reloaded them/);
  t.equal(report.failed, 0, `0 failed of ${report.sent}: ${JSON.stringify(report.samples.filter((s) => s.status !== 200).slice(0, 3))}`);
  t.ok(report.sent >= 900, `load ran (${report.sent} requests)`);
  t.not(await servedSerial(ca.cert), before, 'the new certificate is served');
  const audit = readFileSync(join(dir, 'log', 'audit.log'), 'utf8');
  t.match(audit, /"action":"cert-install"[^\n]*"reason":"renewal"/, 'the installation is in the audit trail');
});

t.test('a bad certificate is refused by cert install and the running one stays', async (t) => {
  const other = createCa('Stranger');
  const leaf = issueServerCert(other, { dnsNames: ['localhost'], ipAddresses: [] });
  writeFileSync(join(dir, 'bad-chain.pem'), leaf.certPem);
  writeFileSync(join(dir, 'bad-key.pem'), leaf.keyPem, { mode: 0o600 });
  const before = await servedSerial(ca.cert);
  const r = await xksFails(['cert', 'install', '--config', configFile, '--chain', join(dir, 'bad-chain.pem'), '--key', join(dir, 'bad-key.pem')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /server\.tls\.certFile: .*root/);
  t.equal(await servedSerial(ca.cert), before, 'still serving the installed certificate');
});

t.test('doctor catches each broken setup it claims to check', async (t) => {
  const failing = async (file: string, name: RegExp, detail: RegExp) => {
    const results = await doctor(file);
    const hit = results.find((r) => r.verdict === 'FAIL' && name.test(r.name) && detail.test(r.detail));
    t.ok(hit, `${file}: FAIL ${name} ${detail}: ${JSON.stringify(results.filter((r) => r.verdict !== 'OK'))}`);
  };
  // Wrong SAN: the configured host name is not the certificate's.
  await failing(variant('wrong-san', (c) => (c.proxy.hostname = 'xks.example.com')), /^certificate$/, /HOSTNAME_NOT_IN_SAN/);

  // Expired, and a missing intermediate: certificates from a CA with an intermediate.
  const root = createCa('Doctor Root');
  writeFileSync(join(dir, 'doctor-root.pem'), root.certPem);
  const inter = issueIntermediateCa(root, 'Doctor Intermediate');
  const tlsDir = join(etc, 'tls');
  const withCert = (name: string, chain: string, key: string) => {
    writeFileSync(join(tlsDir, `${name}-chain.pem`), chain);
    writeFileSync(join(tlsDir, `${name}-key.pem`), key, { mode: 0o600 });
    return variant(name, (c) => {
      c.server.tls = { ...c.server.tls, certFile: `tls/${name}-chain.pem`, keyFile: `tls/${name}-key.pem`, stagingRoots: [join(dir, 'doctor-root.pem')] };
    });
  };
  const day = 86_400_000;
  const expired = issueServerCert(inter, { dnsNames: ['localhost'], ipAddresses: [], notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) });
  await failing(withCert('expired', expired.certPem + inter.certPem, expired.keyPem), /^certificate$/, /EXPIRED/);
  const leaf = issueServerCert(inter, { dnsNames: ['localhost'], ipAddresses: [] });
  await failing(withCert('no-intermediate', leaf.certPem, leaf.keyPem), /^certificate$/, /ROOT_NOT_FOUND.*Doctor Intermediate/);

  // Wrong PIN on one node.
  await failing(join(etc, 'wrong-pin.yaml'), /^hsm hsm-2$/, /CKR_PIN_INCORRECT/);

  // A stopped node: the running service's node process frozen.
  const status = JSON.parse((await xks(['status', '--config', configFile, '--json'])).stdout);
  const pid = status.nodes[1].pid as number;
  process.kill(pid, 'SIGSTOP');
  try {
    await waitFor('hsm-2 out of rotation', () => JSON.parse(execFileSync(...xksCommand(['status', '--config', configFile, '--json']), { encoding: 'utf8' })).nodes[1].health !== 'ACTIVE', 15_000);
    await failing(configFile, /^hsm hsm-2$/, /running service has it (UNAVAILABLE|DEGRADED)/);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
});

t.test('the control socket belongs to its instance; fault injection is refused in production', async (t) => {
  // Same directory, another configuration name: its own default socket, never the first one's.
  const other = variant('other', (c) => {
    delete c.control;
  });
  const def = parse(readFileSync(configFile, 'utf8')).control.socket as string;
  t.equal(statSync(def).mode & 0o077, 0, 'socket closed to group and others from its creation');
  t.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700, 'in a 0700 directory');
  // A second instance naming the same socket refuses to start, before it touches an HSM, and leaves it.
  const clash = variant('clash', (c) => {
    c.server.port = port + 2;
    c.metrics.port = port + 3;
  });
  const r = await xksFails(['serve', '--config', clash]);
  t.equal(r.code, 2);
  t.match(r.stderr, /control socket .* is in use by a running xks instance/);
  t.ok(existsSync(def), 'the first instance keeps its socket');
  t.match((await xks(['status', '--config', configFile])).stdout, /HSM nodes:/, 'and is still managed through it');
  const noRun = await xksFails(['status', '--config', other]);
  t.match(noRun.stderr, /no running appliance .*xks-control\/other\.sock/, 'the other configuration has its own socket path');

  const fault = await xksFails(['fault', '--config', configFile, '--node', 'hsm-1', '--kind', 'fail']);
  t.not(fault.code, 0);
  t.match(fault.stderr, /refused in production mode/);
});

t.test('a clean stop of the whole process group: exit 0, no node warnings', async (t) => {
  copyFileSync(configFile, join(dir, 'prod-backup.yaml'));
  const exited = new Promise<number | null>((resolve) => serve!.once('exit', (code) => resolve(code)));
  const mark = serveOut.length;
  // What Ctrl-C in a terminal or a control-group kill does: every process of the group gets it.
  process.kill(-serve!.pid!, 'SIGTERM');
  t.equal(await exited, 0, 'exit 0');
  const tail = serveOut.slice(mark);
  t.notMatch(tail, /HSM node (UNAVAILABLE|process exited)|restartInMs/, `no warnings about HSM nodes: ${tail.slice(0, 800)}`);
  t.notOk(existsSync(parse(readFileSync(configFile, 'utf8')).control.socket), 'its socket is removed');
});
