// Start the appliance the way every acceptance check does: `bin/xks demo` in a child process,
// ready when DIR/demo.json appears (docs/demo.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../xks/hsm/package-root.js';

/** The package root, whether this runs from the sources (tap) or from dist/ (benchmarks). */
export const ROOT = packageRoot();
export const XKS_BIN = join(ROOT, 'bin', 'xks');

export interface DemoJson {
  pid: number;
  endpoint: string;
  store: string;
  uriPath: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  secondCredential: { accessKeyId: string; secretAccessKey: string };
  caFile: string;
  clientCert?: string;
  clientKey?: string;
  wrongClientCert?: string;
  wrongClientKey?: string;
  keys: { encryptDecrypt: string; encryptOnly: string; decryptOnly: string; noUsage: string; disabled: string };
  healthzUrl: string;
  metricsUrl: string;
  healthHttpUrl: string;
  agentCheckPort: number;
  configFile: string;
  auditLog: string;
  kmsProxyConfigFile: string;
  hsmNodes: Array<{ id: string; pid: number; health: string }>;
  haproxy?: { endpoint: string; monitorUrl: string; configFile: string; pid: number };
  instances: DemoInstance[];
}

/** One proxy instance in demo.json (one entry without --instances). */
export interface DemoInstance {
  id: string;
  pid: number;
  endpoint: string;
  configFile: string;
  healthzUrl: string;
  healthHttpUrl: string;
  metricsUrl: string;
  agentCheckPort: number;
  auditLog: string;
  hsmNodes: Array<{ id: string; pid: number; health: string }>;
}

export interface RunningDemo {
  dir: string;
  port: number;
  demo: DemoJson;
  proc: ChildProcess;
  output(): string;
  /** Re-read demo.json (pids change when nodes restart). */
  reload(): DemoJson;
  stop(): Promise<number | null>;
}

/**
 * `bin/xks ARGS` as a user runs it. tap wraps child_process to put its coverage loaders into
 * NODE_OPTIONS, which breaks an extensionless ES module entry; `env -u` drops them at exec time.
 */
export function xksCommand(args: string[], nodeArgs: string[] = []): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', ...(nodeArgs.length ? [process.execPath, ...nodeArgs] : []), XKS_BIN, ...args]];
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.createServer().once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** A run of `span` free consecutive ports. */
export async function freePorts(span: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    // Below Linux's ephemeral range (32768-60999), where outgoing connections take their ports.
    const base = 10000 + Math.floor(Math.random() * 22000);
    let ok = true;
    for (let p = base; p < base + span && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free ports');
}

/**
 * `instances`: with --instances I the demo needs 8 ports per instance (PORT+8(N-1) .. +3 for
 * instance N; PORT+4 .. PORT+7 stay for HAProxy); it is passed as --instances when above 1.
 */
export async function startDemo(
  args: string[] | ((port: number) => string[]) = [],
  opts: {
    dir?: string;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    instances?: number;
    /** Node flags such as --cpu-prof (which HSM node processes inherit). */
    nodeArgs?: string[];
  } = {},
): Promise<RunningDemo> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'xks-demo-'));
  const instances = opts.instances ?? 1;
  // Another test file running beside this one may take a port between freePorts() and the demo's
  // listen: a start refused for a port in use is tried again on other ports.
  for (let attempt = 1; ; attempt++) {
    const port = await freePorts(8 * instances);
    rmSync(join(dir, 'demo.json'), { force: true }); // a previous run's is not this run's readiness
    let out = '';
    const extra = [...(typeof args === 'function' ? args(port) : args), ...(instances > 1 ? ['--instances', String(instances)] : [])];
    const proc = spawn(...xksCommand(['demo', '--dir', dir, '--port', String(port), ...extra], opts.nodeArgs), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const file = join(dir, 'demo.json');
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    let ready = true;
    while (!existsSync(file)) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        if (proc.exitCode !== null && attempt < 3 && /already in use/.test(out)) {
          ready = false;
          break;
        }
        throw new Error(`demo did not become ready (exit ${proc.exitCode}):\n${out.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (ready) return runningDemo(dir, port, proc, file, () => out);
  }
}

/** The handle on a demo that wrote its demo.json. */
function runningDemo(dir: string, port: number, proc: ChildProcess, file: string, output: () => string): RunningDemo {
  let last: DemoJson | undefined;
  // After a stop demo.json is gone: the last one read still names the pids to check.
  const reload = () => (last = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoJson) : last!);
  const demo: RunningDemo = {
    dir,
    port,
    demo: reload(),
    proc,
    output,
    reload,
    stop: () =>
      new Promise((res) => {
        // Already gone (exited, or killed by a signal: then exitCode stays null).
        if (proc.exitCode !== null || proc.signalCode !== null) return res(proc.exitCode);
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.once('exit', (code) => {
          clearTimeout(t);
          res(code);
        });
        proc.kill('SIGTERM');
      }),
  };
  return demo;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Test-file teardown: resume any node a test froze, stop the demo, remove its directory. */
export async function stopAndRemove(d: RunningDemo | undefined): Promise<void> {
  if (!d) return;
  for (const n of d.reload()?.hsmNodes ?? []) {
    try {
      process.kill(n.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  await d.stop();
  removeDir(d.dir);
}
