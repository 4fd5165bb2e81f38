// Conformance §2.6 (GetHealthStatus, H1-H6) against a three-node demo: one ekmFleetDetails entry
// per HSM node, every field typed as the spec says.
import t from 'tap';
import { type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { specErrorProblem } from '../helpers/oracle.js';
import { XksClient } from '../helpers/xks-client.js';

const NODES = 3;
let d: RunningDemo;
let c: XksClient;
withDemo(t, ['--nodes', String(NODES)], (demo, client) => {
  d = demo;
  c = client;
});

/** Health's requestMetadata as KMS sends it (H1): no awsPrincipalArn, no kmsKeyArn. */
const healthMeta = (kmsOperation = 'KmsHealthCheck', kmsRequestId = crypto.randomUUID()) => ({ requestMetadata: { kmsRequestId, kmsOperation } });

const nonEmptyString = (v: unknown) => typeof v === 'string' && v.length > 0;

t.test('H1/H2: health without awsPrincipalArn is 200 with every field typed right', async (t) => {
  const r = await c.call('/health', healthMeta());
  t.equal(r.status, 200);
  const h = r.json as Record<string, unknown>;
  t.ok(Number.isInteger(h['xksProxyFleetSize']) && (h['xksProxyFleetSize'] as number) >= 1, 'xksProxyFleetSize is an integer >= 1');
  t.match(r.text, /"xksProxyFleetSize":\d+[,}]/, 'xksProxyFleetSize is a JSON integer, not a string or a float');
  for (const field of ['xksProxyVendor', 'xksProxyModel', 'ekmVendor']) t.ok(nonEmptyString(h[field]), `${field} is a non-empty string`);
  const fleet = h['ekmFleetDetails'];
  t.ok(Array.isArray(fleet), 'ekmFleetDetails is an array');
  if (!Array.isArray(fleet)) return;
  t.ok(fleet.length >= 1 && fleet.length <= 10, 'ekmFleetDetails has 1 to 10 entries');
  for (const entry of fleet as Array<Record<string, unknown>>) {
    t.ok(nonEmptyString(entry['id']) && nonEmptyString(entry['model']), `${String(entry['id'])}: id and model`);
    t.equal(entry['healthStatus'], 'ACTIVE', `${String(entry['id'])}: ACTIVE`);
  }
});

t.test('H2: ekmFleetDetails has one entry per HSM node, the ids of demo.json', async (t) => {
  const r = await c.call('/health', healthMeta());
  const ids = (r.json.ekmFleetDetails as Array<{ id: string }>).map((e) => e.id);
  const expected = Array.from({ length: NODES }, (_, i) => `hsm-${i + 1}`);
  t.same([...ids].sort(), expected);
  t.same(d.demo.hsmNodes.map((n) => n.id).sort(), expected, 'demo.json names the same nodes');
});

t.test('H1: every kmsOperation KMS uses for health is accepted', async (t) => {
  for (const op of ['CreateCustomKeyStore', 'ConnectCustomKeyStore', 'UpdateCustomKeyStore', 'KmsHealthCheck']) {
    t.equal((await c.call('/health', healthMeta(op))).status, 200, op);
  }
});

t.test('H1: health accepts the optional fields KMS may add, and both credential sets', async (t) => {
  const md = { requestMetadata: { ...healthMeta().requestMetadata, awsPrincipalArn: 'arn:aws:iam::123456789012:root', awsSourceVpc: 'vpc-1' } };
  t.equal((await c.call('/health', md)).status, 200, 'with awsPrincipalArn and awsSourceVpc');
  t.equal((await c.call('/health', healthMeta(), { credential: d.demo.secondCredential })).status, 200, 'second credential set');
});

t.test('X1: {} and {"requestMetadata":{}} on health are 400 ValidationException', async (t) => {
  t.equal(specErrorProblem(await c.call('/health', {}), 400, 'ValidationException'), '', '{}');
  t.equal(specErrorProblem(await c.call('/health', { requestMetadata: {} }), 400, 'ValidationException'), '', '{"requestMetadata":{}}');
  t.equal(specErrorProblem(await c.call('/health', { requestMetadata: { kmsOperation: 'KmsHealthCheck' } }), 400, 'ValidationException'), '', 'without kmsRequestId');
  t.equal(specErrorProblem(await c.call('/health', { requestMetadata: { kmsRequestId: 'x' } }), 400, 'ValidationException'), '', 'without kmsOperation');
});

t.test('H3/H4: health reflects the nodes demo.json reports ACTIVE, and repeated calls agree', async (t) => {
  const replies = await Promise.all(Array.from({ length: 8 }, () => c.call('/health', healthMeta())));
  for (const r of replies) {
    t.equal(r.status, 200);
    t.same(
      (r.json.ekmFleetDetails as Array<{ healthStatus: string }>).map((e) => e.healthStatus),
      Array(NODES).fill('ACTIVE'),
    );
  }
  t.ok(d.reload().hsmNodes.every((n) => n.health === 'ACTIVE'), 'demo.json: every node ACTIVE');
});

t.test('H6: with every HSM node frozen, health is an error (503/500), not 200; it recovers after', async (t) => {
  const pids = d.reload().hsmNodes.map((n) => n.pid);
  // The supervisor may have replaced a frozen node meanwhile: its old pid is then gone.
  const resume = () => pids.forEach((pid) => signal(pid, 'SIGCONT'));
  t.teardown(resume);
  pids.forEach((pid) => signal(pid, 'SIGSTOP'));
  const down = await pollHealth((status) => status !== 200);
  t.ok([500, 503].includes(down.status), `status ${down.status}`);
  t.equal(specErrorProblem(down, down.status), '', 'a spec error body');
  resume();
  t.equal((await pollHealth((status) => status === 200)).status, 200, 'back to 200 once the nodes run again');
});

/** Health replies until `done` holds for one (bounded: the prober runs every few seconds). */
async function pollHealth(done: (status: number) => boolean) {
  for (let i = 0; ; i++) {
    const r = await c.call('/health', healthMeta());
    if (done(r.status) || i >= 150) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
