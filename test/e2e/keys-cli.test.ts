// The operator path of the README's "Preparing the HSMs": two SoftHSM2 tokens made with
// softhsm2-util, then `xks keys create` for the health-check key and a KMS key, `xks keys verify`
// proving them one truth on both nodes; a deliberately split key is caught by verify (exit 1, naming
// the nodes and the label) and at start (xks serve refuses, exit 2), and `list`/`show` tell per node.
import { execFile, execFileSync, fork } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseDocument } from 'yaml';
import { provisionToken } from '../../appliance/demo/tokens.js';
import { loadConfig } from '../../appliance/config/load.js';
import type { ImportReply, ImportRequest } from '../../appliance/keys/import-child.js';
import { compiledEntry } from '../../xks/hsm/package-root.js';
import { freePorts, removeDir, xksCommand } from '../helpers/demo.js';
import { SOFTHSM_MODULE, SO_PIN, USER_PIN } from '../helpers/softhsm.js';

const run = promisify(execFile);
const xks = (args: string[]) =>
  run(...xksCommand(args)).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

const dir = mkdtempSync(join(tmpdir(), 'xks-keys-cli-'));
t.teardown(() => removeDir(dir));
const confs = [1, 2].map((i) => {
  const tokens = join(dir, `hsm-${i}`, 'tokens');
  mkdirSync(tokens, { recursive: true });
  const conf = join(dir, `hsm-${i}`, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  // As the README says: softhsm2-util for the token only, never for keys.
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', `xks-${i}`, '--so-pin', SO_PIN, '--pin', USER_PIN], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'ignore' });
  return conf;
});
const pinFile = join(dir, 'user.pin');
writeFileSync(pinFile, USER_PIN, { mode: 0o600 });
const etc = join(dir, 'etc');
const port = await freePorts(2);
const init = await xks([
  'init', '--name', 'prod', '--dir', etc, '--host', 'localhost', '--module', SOFTHSM_MODULE, '--pin-file', pinFile,
  '--node', `hsm-1,token=xks-1,SOFTHSM2_CONF=${confs[0]}`, '--node', `hsm-2,token=xks-2,SOFTHSM2_CONF=${confs[1]}`,
  '--port', String(port), '--run-dir', join(dir, 'run'), '--log-dir', join(dir, 'log'),
]);
t.equal(init.code, 0, init.stderr);
const configFile = join(etc, 'prod.yaml');
mkdirSync(join(etc, 'tls'), { recursive: true });
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(etc, 'tls', 'prod-key.pem'), '-out', join(etc, 'tls', 'prod-chain.pem'), '-subj', '/CN=localhost', '-days', '3'], { stdio: 'ignore' });
chmodSync(join(etc, 'tls', 'prod-key.pem'), 0o600);
// Comments must survive the edit by keys create.
writeFileSync(configFile, `# operator's note\n${readFileSync(configFile, 'utf8')}`, { mode: 0o640 });

t.test('keys create: the health-check key and a KMS key on both nodes; verify proves them consistent', async (t) => {
  const health = await xks(['keys', 'create', '--config', configFile, '--health-key']);
  t.equal(health.code, 0, health.stderr);
  t.match(health.stdout, /created the health-check key "xks-health-test" \(AES-256\) on hsm-1, hsm-2/);
  const key = await xks(['keys', 'create', '--config', configFile, '--store', 'store1', '--id', 'key-1', '--reason', 'test']);
  t.equal(key.code, 0, key.stderr);
  t.match(key.stdout, /created AES-256 key "key-1" on hsm-1, hsm-2; added store1\/key-1/);
  t.match(key.stdout, /no running service/);
  t.notMatch(key.stdout + key.stderr, USER_PIN);
  const text = readFileSync(configFile, 'utf8');
  t.match(text, /^# operator's note/, 'comments kept');
  t.equal(statSync(configFile).mode & 0o777, 0o640, 'file mode kept');
  t.match(parseDocument(text).toJS().keyStores[0].keys, [{ id: 'key-1', label: 'key-1' }]);
  const again = await xks(['keys', 'create', '--config', configFile, '--store', 'store1', '--id', 'key-1']);
  t.equal(again.code, 2, 'an id in use is refused');
  const verify = await xks(['keys', 'verify', '--config', configFile]);
  t.equal(verify.code, 0, verify.stderr);
  t.match(verify.stdout, /key "key-1": consistent \(material compared across nodes\)\n  hsm-1 +ok +AES_256 SECRET_KEY, encrypt yes, decrypt yes\n  hsm-2 +ok/);
  t.match(verify.stdout, /every node holds the same 2 key\(s\)/);
  const list = await xks(['keys', 'list', '--config', configFile]);
  t.match(list.stdout, /store1\/key-1 +label "key-1" +enabled +consistent +hsm-1:AES_256 hsm-2:AES_256/);
});

t.test('keys import: a wrong wrapping key, a damaged file, or an HSM that cannot record the key: one line, nothing on any token', async (t) => {
  const wrapping = randomBytes(32);
  const other = randomBytes(32);
  for (const [i, conf] of confs.entries()) {
    await provisionToken({ module: SOFTHSM_MODULE, env: { SOFTHSM2_CONF: conf }, tokenLabel: `xks-${i + 1}`, soPin: SO_PIN, userPin: USER_PIN, keys: [{ label: 'kek', material: wrapping, encrypt: false, decrypt: false, unwrap: true }, { label: 'kek-other', material: other, encrypt: false, decrypt: false, unwrap: true }] });
  }
  const material = randomBytes(32);
  const wrap = (kek: Buffer, key: Buffer) => {
    const c = createCipheriv('id-aes256-wrap-pad', kek, Buffer.from('a65959a6', 'hex'));
    return Buffer.concat([c.update(key), c.final()]);
  };
  const wrappedFile = join(dir, 'key-2.wrapped');
  writeFileSync(wrappedFile, wrap(wrapping, material));
  // Whether each node holds `label`: asked the way keys create asks (the per-node process's dry run).
  const onTokens = async (label: string) => {
    const { config } = await loadConfig(configFile);
    return Promise.all(
      config.hsm.nodes.map(
        (node) =>
          new Promise<boolean>((resolve) => {
            const child = fork(compiledEntry('appliance/keys/import-child.js'), [], { serialization: 'advanced', execArgv: [], env: { ...process.env, ...node.env }, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
            child.once('message', (m: ImportReply) => resolve(!m.ok && m.exists === true));
            child.send({ node, label, material: new Uint8Array(0), encrypt: true, decrypt: true, dryRun: true } satisfies ImportRequest);
          }),
      ),
    );
  };

  const wrong = await xks(['keys', 'import', '--config', configFile, '--store', 'store1', '--id', 'key-bad', '--wrapped', wrappedFile, '--wrapping-key', 'kek-other']);
  t.equal(wrong.code, 1, 'a wrong wrapping key is refused');
  t.match(wrong.stderr, /^xks: nothing imported: HSM node hsm-1: could not unwrap the key with "kek-other" \(aes-key-wrap-pad\): wrong wrapping key/);
  t.equal(wrong.stderr.trim().split('\n').length, 1, 'one line');
  const damaged = join(dir, 'damaged.wrapped');
  const bytes = wrap(wrapping, material);
  bytes[5]! ^= 1;
  writeFileSync(damaged, bytes);
  const bad = await xks(['keys', 'import', '--config', configFile, '--store', 'store1', '--id', 'key-bad', '--wrapped', damaged, '--wrapping-key', 'kek']);
  t.equal(bad.code, 1, 'a damaged file is refused');
  t.match(bad.stderr, /nothing imported: HSM node hsm-1: could not unwrap[^\n]*; HSM node hsm-2: could not unwrap/);
  t.same(await onTokens('key-bad'), [false, false], 'nothing left on either token');
  t.notMatch(readFileSync(configFile, 'utf8'), /key-bad/, 'nor in the configuration');

  // The right wrapping key and file: SoftHSM2 2.6 unwraps it (the dry run proves it) but leaves the
  // key's CKA_VALUE_LEN 0, which the data path would refuse as not AES_256 (K5): refused up front.
  const ok = await xks(['keys', 'import', '--config', configFile, '--store', 'store1', '--id', 'key-2', '--wrapped', wrappedFile, '--wrapping-key', 'kek', '--reason', 'test']);
  t.equal(ok.code, 1, 'refused on SoftHSM2 2.6');
  t.match(ok.stderr, /^xks: nothing imported: HSM node hsm-1: this HSM does not record the unwrapped key's length \(CKA_VALUE_LEN 0 after C_UnwrapKey/);
  t.notMatch(ok.stdout + ok.stderr, USER_PIN);
  t.same(await onTokens('key-2'), [false, false], 'nothing left on either token');
  const short = await xks(['keys', 'import', '--config', configFile, '--store', 'store1', '--id', 'key-2', '--wrapped', pinFile, '--wrapping-key', 'kek']);
  t.equal(short.code, 2);
  t.match(short.stderr, /the wrapped key is 8 bytes; an AES-256 key wrapped with aes-key-wrap-pad is 40/);
  const verify = await xks(['keys', 'verify', '--config', configFile]);
  t.equal(verify.code, 0, verify.stderr);
});

t.test('a deliberately split key: verify exits 1 naming nodes and label; xks serve refuses to start', async (t) => {
  // What pkcs11-tool --keygen on each node gives: different material under one label.
  for (const conf of confs) {
    await provisionToken({ module: SOFTHSM_MODULE, env: { SOFTHSM2_CONF: conf }, tokenLabel: `xks-${confs.indexOf(conf) + 1}`, soPin: SO_PIN, userPin: USER_PIN, keys: [{ label: 'k-split', material: randomBytes(32), encrypt: true, decrypt: true }] });
  }
  const doc = parseDocument(readFileSync(configFile, 'utf8'));
  doc.addIn(['keyStores', 0, 'keys'], doc.createNode({ id: 'key-split', label: 'k-split' }));
  // Demo mode: the self-signed test certificate is only a warning, so start-up reaches the HSMs.
  doc.set('mode', 'demo');
  writeFileSync(configFile, doc.toString(), { mode: 0o640 });
  const verify = await xks(['keys', 'verify', '--config', configFile]);
  t.equal(verify.code, 1);
  t.match(verify.stderr, /SPLIT: key "k-split" differs between HSM nodes with no majority: hsm-1 \| hsm-2/);
  t.match(verify.stdout, /key "k-split": split/);
  const show = await xks(['keys', 'show', '--config', configFile, '--id', 'key-split']);
  t.match(show.stdout, /store1\/key-split: label "k-split"[\s\S]*hsm-1 +other-material[\s\S]*hsm-2 +other-material/);
  const check = await xks(['check', '--config', configFile]);
  t.equal(check.code, 2, 'xks check refuses it');
  t.match(check.stderr, /keys: SPLIT: key "k-split" differs/);
  const doctor = await xks(['doctor', '--config', configFile]);
  t.match(doctor.stdout, /FAIL key k-split +key "k-split" differs between HSM nodes/);
  t.match(doctor.stdout, /OK   key key-1 +the same key on 2 node\(s\) \(material compared\)/);
  const serve = await xks(['serve', '--config', configFile]);
  t.equal(serve.code, 2, 'a configuration error');
  t.match(serve.stderr, /key "k-split" differs between HSM nodes/);
});
