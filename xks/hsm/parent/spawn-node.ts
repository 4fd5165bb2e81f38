// Starting one node process: the compiled child entry (xks/hsm/child/node-main.ts) with an IPC
// channel that carries Buffers, under /bin/sh so that this PIN-holding process runs with a hard
// core-file limit of 0 and can never leave a core dump (same pid, same IPC after exec). Its
// environment: the node's own settings, its own PIN variable only, and a libuv thread pool as big
// as its session pool. Its stdout is discarded: vendor libraries print there, and ours is the log.
import { spawn, type ChildProcess } from 'node:child_process';
import type { HsmNodeOptions } from '../options.js';
import { compiledEntry } from '../package-root.js';
import type { PinVariable } from './pin-env.js';

/**
 * A node process keeps almost nothing alive between calls: a 1 MB young generation (V8's default
 * grows to 16 MB under load) keeps its RSS near its idle size. Profiling flags carry over, so one
 * `node --cpu-prof` profiles every process.
 */
const NODE_FLAGS = ['--max-semi-space-size=1', ...process.execArgv.filter((a) => a.startsWith('--cpu-prof'))];

/** Throws when the process cannot be started at all (no compiled entry, no /bin/sh). */
export function spawnNodeProcess(cfg: HsmNodeOptions, pin: PinVariable | undefined): ChildProcess {
  const pinEnv = pin ? { [pin.name]: pin.value } : {};
  const env = { ...process.env, ...cfg.env, ...pinEnv, UV_THREADPOOL_SIZE: String(Math.max(4, cfg.sessions)) };
  // Not the parent's loader flags (tap's TypeScript hooks): the entry is compiled JavaScript.
  return spawn('/bin/sh', ['-c', 'ulimit -H -c 0 && exec "$@"', 'xks-hsm-node', process.execPath, ...NODE_FLAGS, compiledEntry('xks/hsm/child/node-main.js')], {
    serialization: 'advanced',
    env,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
}
