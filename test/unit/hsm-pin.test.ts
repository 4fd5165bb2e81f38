// The node process reads its own PIN: from a file that only its owner can read, or from an
// environment variable. Failures say what to fix and never contain the PIN.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PinError, readPin } from '../../xks/hsm/child/pin.js';

const PIN = 'sekrit-4711';
const dir = mkdtempSync(join(tmpdir(), 'xks-pin-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, content: string, mode: number) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
};

const refuses = (t: Test, source: Parameters<typeof readPin>[0], pattern: RegExp) => {
  try {
    readPin(source);
    t.fail('expected a PinError');
  } catch (err) {
    t.type(err, PinError);
    t.match((err as Error).message, pattern);
    t.notMatch((err as Error).message, PIN);
  }
};

t.test('a 0600 file: the PIN without its trailing newline', async (t) => {
  t.equal(readPin({ file: file('ok.pin', `${PIN}\n`, 0o600) }), PIN);
  t.equal(readPin({ file: file('raw.pin', PIN, 0o400) }), PIN);
});

t.test('a file open to group or others is refused with the chmod to run', async (t) => {
  const p = file('open.pin', PIN, 0o644);
  refuses(t, { file: p }, new RegExp(`mode 0644.*chmod 600 ${p}`));
  refuses(t, { file: file('group.pin', PIN, 0o640) }, /group or others/);
});

t.test('missing, empty and non-regular files are refused', async (t) => {
  refuses(t, { file: join(dir, 'absent.pin') }, /does not exist/);
  refuses(t, { file: file('empty.pin', '\n', 0o600) }, /is empty/);
  const sub = join(dir, 'adir');
  mkdirSync(sub, { mode: 0o700 });
  refuses(t, { file: sub }, /not a regular file/);
});

t.test('an environment variable is read once and removed', async (t) => {
  process.env.XKS_TEST_PIN = PIN;
  t.equal(readPin({ env: 'XKS_TEST_PIN' }), PIN);
  t.equal(process.env.XKS_TEST_PIN, undefined);
  refuses(t, { env: 'XKS_TEST_PIN' }, /XKS_TEST_PIN.*not set/);
});
