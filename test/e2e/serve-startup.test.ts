// `xks serve --config FILE` as an operator meets it: a good configuration serves and stops with
// exit 0; a bad configuration, a missing token, a wrong PIN and the like refuse to start with one
// clear line on stderr: no stack trace, never the PIN or a secret.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { freePorts, removeDir, startDemo, xksCommand, type DemoJson } from '../helpers/demo.js';
import { XksClient } from '../helpers/xks-client.js';

let dir = '';
let demo: DemoJson;
let base: Record<string, any>;
let pin = '';

t.before(async () => {
  const d = await startDemo(['--nodes', '1']);
  dir = d.dir;
  demo = d.demo;
  await d.stop();
  base = parse(readFileSync(join(dir, 'xks.yaml'), 'utf8'));
  pin = readFileSync(join(dir, 'secrets', 'user.pin'), 'utf8');
});
t.teardown(() => removeDir(dir));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Start `xks serve` on a variant of the demo's configuration; stop it after `untilReady` if it starts. */
async function serve(mutate: (c: any) => void, untilReady?: (port: number) => Promise<void>): Promise<Run> {
  const config = structuredClone(base);
  const port = await freePorts(4);
  config.server.port = port;
  config.metrics.port = port + 1;
  config.health = { ...config.health, httpPort: port + 2, agentPort: port + 3 };
  mutate(config);
  const file = join(dir, `serve-${port}.yaml`);
  writeFileSync(file, stringify(config), { mode: 0o600 });
  const proc = spawn(...xksCommand(['serve', '--config', file]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (b: Buffer) => (stdout += b));
  proc.stderr!.on('data', (b: Buffer) => (stderr += b));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  if (untilReady) {
    const end = Date.now() + 30_000;
    while (!stdout.includes('xks proxy ready') && proc.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    if (proc.exitCode === null) {
      await untilReady(port);
      proc.kill('SIGTERM');
    }
  }
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function refused(t: Test, r: Run, pattern: RegExp) {
  t.not(r.code, 0, 'exits non-zero');
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`);
  t.match(lines[0], /^xks: /);
  t.match(lines[0], pattern);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.notOk(r.stderr.includes(pin) || r.stdout.includes(pin), 'the PIN appears nowhere');
  t.notOk(r.stderr.includes(demo.secretAccessKey), 'no secret');
}

t.test('a good configuration serves, and SIGTERM stops it with exit 0', async (t) => {
  // Asserted after the run, not inside the callback: the callback never runs if the service
  // exits before it is ready, and the test must fail then, not pass on the exit code alone.
  let status: number | undefined;
  const r = await serve(
    () => {},
    async (port) => {
      const client = new XksClient({ ...demo, endpoint: `https://localhost:${port}` });
      const reply = await client.call('/health', { requestMetadata: { kmsRequestId: 'serve', kmsOperation: 'KmsHealthCheck' } });
      client.close();
      status = reply.status;
    },
  );
  t.equal(status, 200, 'GetHealthStatus through xks serve');
  t.match(r.stdout, /xks proxy ready/, 'it said it was ready');
  t.equal(r.code, 0, 'exit 0 on SIGTERM');
});

t.test('an inline PIN is refused, naming the field', async (t) => {
  const r = await serve((c) => (c.hsm.nodes[0].pin = pin));
  refused(t, r, /hsm\.nodes\[0\]\.pin: .*never written inline/);
  t.equal(r.code, 2, 'exit 2: configuration error');
});

t.test('an unknown field is refused, naming it', async (t) => {
  refused(t, await serve((c) => (c.server.keepAliveTimout = 1)), /unrecognized|keepAliveTimout/);
});

t.test('a wrong PIN: one line saying the login failed', async (t) => {
  const wrong = join(dir, 'secrets', 'wrong.pin');
  writeFileSync(wrong, '000000000000', { mode: 0o600 });
  const r = await serve((c) => (c.hsm.nodes[0].pin = { file: wrong }));
  refused(t, r, /hsm-1.*(PIN|login)/i);
  t.equal(r.code, 3, 'exit 3: credential/PIN error, which systemd never restarts (RestartPreventExitStatus)');
});

t.test('a missing token: one line naming the token', async (t) => {
  const r = await serve((c) => (c.hsm.nodes[0].tokenLabel = 'no-such-token'));
  refused(t, r, /no-such-token/);
  t.equal(r.code, 2, 'exit 2: configuration error');
});

t.test('a missing PKCS#11 module: one line naming it', async (t) => {
  refused(t, await serve((c) => (c.hsm.nodes[0].module = '/nonexistent/libvendor.so')), /\/nonexistent\/libvendor\.so/);
});

t.test('a credentials file readable by others: told to chmod 600', async (t) => {
  const file = join(dir, 'secrets', 'credentials-demo.yaml');
  chmodSync(file, 0o644);
  try {
    const r = await serve(() => {});
    refused(t, r, /chmod 600/);
    t.equal(r.code, 3, 'exit 3: credential error');
  } finally {
    chmodSync(file, 0o600);
  }
});

t.test('a port in use: one line naming it', async (t) => {
  const r = await serve((c) => (c.server.port = c.metrics.port = c.server.port));
  refused(t, r, /metrics\.port: cannot listen on port (\d+): port \1 is already in use: stop what listens there .* or choose another port/);
});

t.test('a second instance on the same audit file is refused before it writes to it: the chain stays intact', async (t) => {
  let second: Run | undefined;
  const first = await serve(
    () => {},
    async () => {
      second = await serve(() => {});
    },
  );
  t.equal(first.code, 0, 'the first instance served and stopped');
  refused(t, second!, /audit\.file: .*audit\.log is written by another running process \(pid \d+.*give each instance its own audit\.file/);
  const verify = spawn(...xksCommand(['audit', 'verify', resolve(dir, base.audit.file)]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  verify.stdout!.on('data', (b: Buffer) => (out += b));
  verify.stderr!.on('data', (b: Buffer) => (out += b));
  t.equal(await new Promise((resolve) => verify.once('exit', resolve)), 0, `the audit chain is intact: ${out.trim()}`);
});

t.test('production mode refuses a certificate that does not chain to a KMS trusted root', async (t) => {
  refused(t, await serve((c) => (c.mode = 'production')), /server\.tls\.certFile: .*root/);
});

t.test('production mode refuses a certificate that does not name proxy.hostname', async (t) => {
  refused(t, await serve((c) => ((c.mode = 'production'), (c.proxy.hostname = 'xks.example.com'))), /server\.tls\.certFile: .*xks\.example\.com/);
});

t.test('a missing configuration file', async (t) => {
  const proc = spawn(...xksCommand(['serve', '--config', join(dir, 'nope.yaml')]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr += b));
  const code = await new Promise((r) => proc.once('exit', r));
  refused(t, { code: code as number, stdout: '', stderr }, /nope\.yaml: no such file/);
});
