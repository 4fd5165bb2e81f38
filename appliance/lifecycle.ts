// The process around a running appliance: SIGTERM/SIGINT stop it cleanly (in-flight requests
// finish, node processes end, logs flush) with exit code 0; SIGHUP reloads the configuration file,
// certificate, key and credentials. Shared by `xks serve` and `xks demo`.
import type { Logger } from './logging.js';
import type { Appliance } from './service.js';

export interface Lifecycle {
  /** True once a stop began: late events must not write state any more. */
  readonly stopping: boolean;
}

export function runUntilSignalled(app: Appliance, logger: Logger, beforeClose: () => Promise<void> = async () => {}, afterClose: () => void = () => {}): Lifecycle {
  const state = { stopping: false };
  const stop = async (signal: string) => {
    if (state.stopping) return;
    state.stopping = true;
    logger.info({ signal }, 'stopping');
    await beforeClose();
    await app.close();
    afterClose();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    app.reload({ operator: 'signal:SIGHUP' }).catch((err: Error) => {
      logger.error({ err: err.message }, 'reload refused; the running configuration stays');
    });
  });
  return state;
}
