// The process around a running appliance: SIGTERM stops it gracefully (drain first: load
// balancers are told, every connection ends between requests; what systemd and a rolling restart
// send); SIGINT stops it at once (in-flight requests finish, node processes end, logs flush); both
// exit 0. SIGHUP reloads the configuration file,
// certificate, key and credentials. Shared by `xks serve` and `xks demo`.
import type { Logger } from './logging.js';

/** What a signal acts on: one appliance, or (in the demo) the instances it supervises. */
export interface Runnable {
  reload(by: { operator: string }): unknown;
  /** Graceful first half of a SIGTERM stop; without it SIGTERM stops at once like SIGINT. */
  drain?(): Promise<void>;
  close(): Promise<void>;
}

export interface Lifecycle {
  /** True once a stop began: late events must not write state any more. */
  readonly stopping: boolean;
  /** Stop as SIGTERM does (e.g. when the supervisor is gone). */
  stop(reason: string): void;
}

export function runUntilSignalled(app: Runnable, logger: Logger, beforeClose: () => Promise<void> = async () => {}, afterClose: () => void = () => {}): Lifecycle {
  const state = { stopping: false, stop: (reason: string) => void stop(reason) };
  const stop = async (signal: string) => {
    if (state.stopping) return;
    state.stopping = true;
    logger.info({ signal }, 'stopping');
    if (signal === 'SIGTERM') await app.drain?.();
    await beforeClose();
    await app.close();
    afterClose();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    Promise.resolve()
      .then(() => app.reload({ operator: 'signal:SIGHUP' }))
      .catch((err: Error) => {
        logger.error({ err: err.message }, 'reload refused; the running configuration stays');
      });
  });
  return state;
}
