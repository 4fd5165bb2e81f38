// Starting one node process: the compiled child entry (xks/hsm/child/node-main.ts) with two
// channels to it: Node's IPC channel for start-up, fatal errors and the disconnect that ends it, and
// a plain pipe (its descriptor CALL_PIPE_FD) for the calls and replies. That pipe costs each side
// about half the CPU per call of the IPC channel, whose framing, serialization and parsing of each
// message showed at the top of profiles under load. The process runs under /bin/sh so that this
// PIN-holding process has a hard core-file limit of 0 and can never leave a core dump (same pid,
// same descriptors after exec). Its environment: the node's own settings, its own PIN variable only,
// and a libuv thread pool as big as its session pool. Its stdout is discarded: vendor libraries
// print there, and ours is the log.
import { spawn, type ChildProcess } from 'node:child_process';
import type { HsmNodeOptions } from '../options.js';
import { CALL_PIPE_FD } from '../protocol.js';
import { compiledEntry } from '../package-root.js';
import type { PinVariable } from './pin-env.js';

/**
 * A node process keeps almost nothing alive between calls: a 1 MB young generation (V8's default
 * grows to 16 MB under load) keeps its RSS near its idle size. Profiling flags carry over, so one
 * `node --cpu-prof` profiles every process.
 */
const NODE_FLAGS = ['--max-semi-space-size=1', ...process.execArgv.filter((a) => a.startsWith('--cpu-prof'))];

const STDIO: Array<'ignore' | 'pipe' | 'ipc'> = ['ignore', 'ignore', 'pipe', 'ipc'];
STDIO[CALL_PIPE_FD] = 'pipe';

/** Throws when the process cannot be started at all (no compiled entry, no /bin/sh). */
export function spawnNodeProcess(cfg: HsmNodeOptions, pin: PinVariable | undefined): ChildProcess {
  const pinEnv = pin ? { [pin.name]: pin.value } : {};
  const env = { ...process.env, ...cfg.env, ...pinEnv, UV_THREADPOOL_SIZE: String(Math.max(4, cfg.sessions)) };
  // Not the parent's loader flags (tap's TypeScript hooks): the entry is compiled JavaScript.
  return spawn('/bin/sh', ['-c', 'ulimit -H -c 0 && exec "$@"', 'xks-hsm-node', process.execPath, ...NODE_FLAGS, compiledEntry('xks/hsm/child/node-main.js')], {
    serialization: 'advanced',
    env,
    stdio: STDIO,
  });
}
