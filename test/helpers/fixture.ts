// One demo per test file: started before the file's first test, stopped and removed after its last.
import type { Test } from 'tap';
import { startDemo, stopAndRemove, type RunningDemo } from './demo.js';
import { widenRequestBudget } from './operator.js';
import { XksClient } from './xks-client.js';

export function withDemo(t: Test, args: string[], ready: (d: RunningDemo, c: XksClient) => void | Promise<void>, opts: { instances?: number } = {}): void {
  let d: RunningDemo | undefined;
  let c: XksClient | undefined;
  t.before(async () => {
    d = await startDemo(args, opts);
    c = new XksClient(d.demo);
    await ready(d, c);
  });
  t.teardown(async () => {
    c?.close();
    await stopAndRemove(d);
  });
}

/**
 * A two-instance demo for the day-2 operator tests (creds, kill switch): one key store served by
 * both, with the request budget widened (widenRequestBudget) before the first test.
 */
export function withTwoInstances(t: Test, ready: (d: RunningDemo, c: XksClient) => void): void {
  withDemo(
    t,
    [],
    async (d, c) => {
      ready(d, c);
      await widenRequestBudget(d.demo.instances.map((i) => i.configFile));
    },
    { instances: 2 },
  );
}
