// `xks demo --haproxy-port HP`: render this appliance's HAProxy configuration (the same renderer
// `xks haproxy render` uses), check it with `haproxy -c`, and run the real haproxy in front:
// TCP passthrough on 127.0.0.1:HP with send-proxy-v2 to the Node listener, and the NLB monitor.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { writeFileAtomic } from '../certs/atomic-write.js';
import { CliError } from '../cli/errors.js';
import type { Config } from '../config/schema.js';
import { optionsFromConfig } from '../haproxy-options.js';
import { renderHaproxy } from '../../haproxy/render.js';

export interface DemoHaproxy {
  endpoint: string;
  monitorUrl: string;
  configFile: string;
  pid: number;
  stop(): Promise<void>;
}

function monitorUp(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

export async function startDemoHaproxy(config: Config, opts: { dir: string; port: number; monitorPort: number; caFile: string; logFile: string }): Promise<DemoHaproxy> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const rendered = renderHaproxy(
    optionsFromConfig(config, {
      bind: { address: '127.0.0.1', port: opts.port },
      monitor: { address: '127.0.0.1', port: opts.monitorPort },
      acceptProxy: false, // no NLB in front of the demo
      unprivileged: true,
      runDir: opts.dir,
      checkCaFile: opts.caFile,
      // Demo timings: a frozen appliance shows in the monitor within a few seconds.
      check: { interMs: 1000, fastInterMs: 500, downInterMs: 1000, fall: 2, rise: 2, timeoutMs: 1000, agentInterMs: 1000 },
    }),
  );
  const configFile = join(opts.dir, 'haproxy.cfg');
  writeFileAtomic(configFile, rendered.text, 0o600);
  const check = spawnSync('haproxy', ['-c', '-q', '-f', configFile], { encoding: 'utf8', timeout: 15_000 });
  if (check.error) throw new CliError('--haproxy-port needs haproxy on PATH: run "apt-get install -y haproxy" (bin/setup does it)');
  if (check.status !== 0) throw new CliError(`haproxy -c rejects the rendered ${configFile}: ${(check.stderr || check.stdout).trim().split('\n')[0]}`);

  const log = createWriteStream(opts.logFile, { flags: 'a', mode: 0o600 });
  const proc: ChildProcess = spawn('haproxy', ['-f', configFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.pipe(log);
  proc.stderr!.pipe(log);
  const monitorUrl = `http://127.0.0.1:${opts.monitorPort}${config.health.path}`;
  const deadline = Date.now() + 20_000;
  while (!(await monitorUp(monitorUrl))) {
    if (proc.exitCode !== null) throw new CliError(`haproxy exited (${proc.exitCode}) at start; see ${opts.logFile}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new CliError(`haproxy's monitor ${monitorUrl} did not answer 200 within 20 s; see ${opts.logFile}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    endpoint: `https://localhost:${opts.port}`,
    monitorUrl,
    configFile,
    pid: proc.pid!,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        proc.once('exit', () => {
          clearTimeout(t);
          log.end();
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}
