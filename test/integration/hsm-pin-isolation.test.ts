// Each HSM node process holds its own PIN only: with PINs in environment variables (pin.env), the
// parent takes them all out of its environment before starting anything, and each node process's
// environment (/proc/PID/environ, what a same-user process or a crash report could read) holds its
// own variable and no other node's. Node processes can never write a core dump (hard limit 0).
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { HsmNodeConfig } from '../../appliance/config/schema.js';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import { makeTestHsm, USER_PIN } from '../helpers/softhsm.js';

const th = await makeTestHsm({ nodes: 2 });
t.teardown(() => th.cleanup());
const VARS = ['XKS_TEST_NODE1_PIN', 'XKS_TEST_NODE2_PIN'];
const nodes = (th.hsm.nodes as HsmNodeConfig[]).map((n, i) => ({ ...n, pin: { env: VARS[i]! } }));
for (const v of VARS) process.env[v] = USER_PIN;
const cluster = createHsmCluster({ ...th.hsm, nodes });
t.teardown(() => cluster.close());
await cluster.start();

const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');

t.test('the parent keeps no PIN variable once the node processes have them', async (t) => {
  for (const v of VARS) t.equal(process.env[v], undefined, `${v} is gone from the parent's environment`);
});

t.test("each node process's environment holds its own PIN variable and no other node's", async (t) => {
  const status = cluster.status();
  t.equal(status.length, 2);
  for (const [i, n] of status.entries()) {
    t.ok(n.pid, `${n.id} runs`);
    const env = environ(n.pid!);
    t.ok(env.includes(`${VARS[i]}=${USER_PIN}`), `${n.id} was started with its own ${VARS[i]}`);
    const other = VARS[1 - i]!;
    t.notOk(env.some((e) => e.startsWith(`${other}=`)), `${n.id} never saw ${other}`);
  }
});

t.test('node processes cannot dump core (hard limit 0)', async (t) => {
  for (const n of cluster.status()) {
    const line = readFileSync(`/proc/${n.pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max core file size'));
    t.match(line, /^Max core file size\s+0\s+0\s/, `${n.id}: soft and hard core limits are 0`);
  }
});

t.test('a restarted node process gets its own PIN again, still only its own', async (t) => {
  const before = cluster.status()[0]!;
  process.kill(before.pid!, 'SIGKILL');
  let after = cluster.status()[0]!;
  for (let i = 0; i < 300 && !(after.pid && after.pid !== before.pid && after.health !== 'UNAVAILABLE'); i++) {
    await new Promise((r) => setTimeout(r, 50));
    after = cluster.status()[0]!;
  }
  t.not(after.pid, before.pid, 'restarted');
  t.not(after.health, 'UNAVAILABLE', 'and logged in again (it had the PIN)');
  const env = environ(after.pid!);
  t.ok(env.includes(`${VARS[0]}=${USER_PIN}`), 'with its own PIN variable');
  t.notOk(env.some((e) => e.startsWith(`${VARS[1]}=`)), 'and not the other node’s');
});
