// `xks demo --instances I`: each proxy instance is its own `xks serve` process on its own
// configuration file, supervised the way systemd's Restart=always does it: an instance that exits
// for any reason (SIGTERM from a rolling restart, a crash, SIGKILL) is started again, with a
// back-off when it keeps failing fast. Instances report readiness and their HSM node processes
// over the IPC channel (appliance/fleet/notify.ts).
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../../xks/hsm/package-root.js';
import { CliError } from '../cli/errors.js';
import type { InstanceMessage, NodeSummary } from '../fleet/notify.js';
import type { Logger } from '../logging.js';

export interface SupervisedInstance {
  readonly id: string;
  readonly configFile: string;
  /** The running process, or undefined between an exit and its restart. */
  readonly pid: number | undefined;
  readonly hsmNodes: NodeSummary[];
  /** Resolves once the first process is ready; rejects when it exits before that. */
  readonly firstReady: Promise<void>;
  stop(): Promise<void>;
}

const RESTART_MIN_MS = 200;
const RESTART_MAX_MS = 5000;
/** A process that ran this long was healthy: its next restart starts the back-off over. */
const STABLE_MS = 10_000;
/** An instance asked to stop (SIGINT: at once, no drain) that is still there after this is killed. */
const STOP_KILL_AFTER_MS = 10_000;

/**
 * Start and keep running one instance. `onChange` is called whenever its pid or its HSM node
 * processes change, so the caller can rewrite demo.json.
 */
export function superviseInstance(id: string, configFile: string, logger: Logger, onChange: () => void): SupervisedInstance {
  const entry = join(packageRoot(), 'bin', 'xks');
  let proc: ChildProcess | undefined;
  let hsmNodes: NodeSummary[] = [];
  let stopping = false;
  let everReady = false;
  let delay = RESTART_MIN_MS;
  let restartTimer: NodeJS.Timeout | undefined;
  let settleFirst: { resolve: () => void; reject: (e: Error) => void };
  const firstReady = new Promise<void>((resolve, reject) => (settleFirst = { resolve, reject }));

  const start = () => {
    const startedAt = Date.now();
    let lastError = '';
    // stdout (JSON log lines) goes straight to the demo's; stderr is kept for a failed start's reason.
    const child = fork(entry, ['serve', '--config', configFile], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], execArgv: [] });
    proc = child;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      lastError = line;
      process.stderr.write(`${line}\n`);
    });
    child.on('message', (m: InstanceMessage) => {
      hsmNodes = m.hsmNodes;
      if (m.type === 'ready') {
        logger.info({ instance: id, pid: child.pid, port: m.port }, 'instance ready');
        if (!everReady) settleFirst.resolve();
        everReady = true;
      }
      onChange();
    });
    child.once('exit', (code, signal) => {
      if (proc === child) proc = undefined;
      hsmNodes = [];
      if (stopping) return;
      if (!everReady) {
        settleFirst.reject(new CliError(`instance ${id} did not start (${lastError.replace(/^xks: /, '') || `exit ${code ?? signal}`})`));
        return;
      }
      delay = Date.now() - startedAt > STABLE_MS ? RESTART_MIN_MS : Math.min(RESTART_MAX_MS, delay * 2);
      logger.warn({ instance: id, pid: child.pid, code, signal, restartInMs: delay }, 'instance exited; restarting it');
      onChange();
      restartTimer = setTimeout(start, delay);
    });
    onChange();
  };
  start();

  return {
    id,
    configFile,
    get pid() {
      return proc?.pid;
    },
    get hsmNodes() {
      return hsmNodes;
    },
    firstReady,
    // The whole demo stops: no load balancer to drain for, so SIGINT (SIGTERM would drain first).
    stop: () => {
      stopping = true;
      clearTimeout(restartTimer);
      const child = proc;
      if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), STOP_KILL_AFTER_MS);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGINT');
      });
    },
  };
}
