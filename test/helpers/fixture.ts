// One demo per test file: started before the file's first test, stopped and removed after its last.
import type { Test } from 'tap';
import { startDemo, stopAndRemove, type RunningDemo } from './demo.js';
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
