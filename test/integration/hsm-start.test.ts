// A configuration that cannot work makes start() reject with one operator-readable line that
// names the node and the fix (never the PIN), and leaves no node process behind.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { HsmConfig, HsmNodeConfig } from '../../appliance/config/schema.js';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import { LABELS, USER_PIN, makeTestHsm } from '../helpers/softhsm.js';

const th = await makeTestHsm({ nodes: 2 });
t.teardown(() => th.cleanup());
const [good, second] = th.hsm.nodes as [HsmNodeConfig, HsmNodeConfig];

const WRONG_PIN = '13572468';
const wrongPinFile = join(th.dir, 'wrong.pin');
writeFileSync(wrongPinFile, WRONG_PIN, { mode: 0o600 });
const openPinFile = join(th.dir, 'open.pin');
writeFileSync(openPinFile, USER_PIN);
chmodSync(openPinFile, 0o644);

/** Starts a cluster expected to fail; returns the error line after checking nothing is left running. */
async function startFails(t: Test, hsm: HsmConfig): Promise<string> {
  const cluster = createHsmCluster(hsm);
  const pids = new Set<number>();
  const poll = setInterval(() => cluster.status().forEach((n) => n.pid && pids.add(n.pid)), 5);
  const err = await cluster.start().then(
    () => new Error('start() resolved'),
    (e: Error) => e,
  );
  clearInterval(poll);
  await cluster.close();
  for (const pid of pids) t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `node process ${pid} is gone`);
  t.notMatch(err.message, /\n/, 'one line');
  t.notMatch(err.message, USER_PIN);
  t.notMatch(err.message, WRONG_PIN);
  return err.message;
}

const withNode = (patch: Partial<HsmNodeConfig>, extra: Partial<HsmConfig> = {}): HsmConfig => ({ ...th.hsm, ...extra, nodes: [{ ...good, ...patch }] });

t.test('wrong PIN', async (t) => {
  const line = await startFails(t, withNode({ pin: { file: wrongPinFile } }));
  t.match(line, `HSM node hsm-1: login failed: CKR_PIN_INCORRECT; put the token's user PIN in the PIN file ${wrongPinFile}`);
});

t.test('PIN file open to others, PIN file missing, PIN variable unset', async (t) => {
  t.match(await startFails(t, withNode({ pin: { file: openPinFile } })), `HSM node hsm-1: the PIN file ${openPinFile} is open to group or others (mode 0644); run chmod 600`);
  t.match(await startFails(t, withNode({ pin: { file: join(th.dir, 'absent.pin') } })), /^HSM node hsm-1: the PIN file .*absent\.pin does not exist/);
  t.match(await startFails(t, withNode({ pin: { env: 'XKS_TEST_UNSET_PIN' } })), /^HSM node hsm-1: the PIN variable XKS_TEST_UNSET_PIN .*is not set/);
});

t.test('no such token', async (t) => {
  const line = await startFails(t, withNode({ tokenLabel: 'no-such-token' }));
  t.match(line, /^HSM node hsm-1: no token labelled "no-such-token" \(tokens present: "xks-test-1"\); fix tokenLabel/);
  t.match(line, 'SOFTHSM2_CONF');
});

t.test('no such module, or not a PKCS#11 library', async (t) => {
  t.match(await startFails(t, withNode({ module: '/nonexistent/libpkcs11.so' })), /^HSM node hsm-1: the PKCS#11 module \/nonexistent\/libpkcs11\.so does not exist; set module/);
  t.match(await startFails(t, withNode({ module: wrongPinFile })), /^HSM node hsm-1: the PKCS#11 module .* cannot be loaded/);
});

t.test('health-check key missing or not AES-256', async (t) => {
  t.match(await startFails(t, withNode({}, { healthKeyLabel: 'no-such-key' })), /^HSM node hsm-1: the health-check key "no-such-key" is not on token "xks-test-1"; import an AES-256 key/);
  t.match(await startFails(t, withNode({}, { healthKeyLabel: LABELS.generic })), /^HSM node hsm-1: the health-check key "k-generic" is not usable: CKA_KEY_TYPE is GENERIC_SECRET, not AES; import an AES-256 key/);
});

t.test("ivMode 'hsm' on a module that does not write an IV back is refused", async (t) => {
  t.match(await startFails(t, withNode({ ivMode: 'hsm' })), /^HSM node hsm-1: ivMode is "hsm" but the module left the zero IV unchanged.*set ivMode: caller/);
});

t.test('fewer nodes than hsm.minNodesAtStart fails the start, naming the bad node; the good one is stopped', async (t) => {
  const hsm = { ...th.hsm, minNodesAtStart: 2, nodes: [good, { ...second, pin: { file: wrongPinFile } }] };
  t.match(await startFails(t, hsm), /^1 of 2 HSM nodes started, hsm.minNodesAtStart is 2: HSM node hsm-2: login failed: CKR_PIN_INCORRECT/);
});
