// No answer without its record: SIGKILL the appliance while it is under load; every kmsRequestId
// that got a 200 must already be in the audit file (its write reached the OS before the reply),
// and the chain a restart continues verifies as intact.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { startDemo, stopAndRemove, type RunningDemo } from '../helpers/demo.js';
import { b64, meta, XksClient } from '../helpers/xks-client.js';

let d: RunningDemo | undefined;
t.teardown(() => stopAndRemove(d));

t.test('SIGKILL under load loses no answered request from the audit log', async (t) => {
  d = await startDemo();
  const client = new XksClient(d.demo);
  t.teardown(() => client.close());
  const answered: string[] = [];
  let failed = 0;
  let killed = false;
  const worker = async () => {
    while (!killed) {
      const id = randomUUID();
      const reply = await client
        .call(`/keys/${d!.demo.keys.encryptDecrypt}/encrypt`, { ...meta({ kmsRequestId: id }), plaintext: b64('crash test'), encryptionAlgorithm: 'AES_GCM' })
        .catch(() => undefined);
      if (reply?.status === 200) answered.push(id);
      else failed++;
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  // Kill mid-stream, once enough has been answered that batches of several records are in flight.
  while (answered.length < 300) await new Promise((r) => setTimeout(r, 20));
  process.kill(d.demo.pid, 'SIGKILL');
  killed = true;
  await Promise.all(workers);
  await d.stop();

  const audited = new Set(
    readFileSync(d.demo.auditLog, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { kmsRequestId?: string }).kmsRequestId),
  );
  const missing = answered.filter((id) => !audited.has(id));
  t.ok(answered.length >= 300, `${answered.length} requests answered 200 before the kill (${failed} cut off)`);
  t.same(missing, [], 'every answered kmsRequestId is in the audit file');
});
