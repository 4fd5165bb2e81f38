// `xks serve --config FILE`: run the appliance in the foreground (systemd's ExecStart).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { runUntilSignalled } from '../lifecycle.js';
import { createLogger } from '../logging.js';
import { notifySupervisor } from '../fleet/notify.js';
import { startAppliance } from '../service.js';

export function register(program: Command): void {
  program
    .command('serve')
    .summary('run the XKS proxy with one configuration file (production)')
    .description(
      'Run the XKS proxy in the foreground with one configuration file (JSON log lines on stdout).\n' +
        'The configuration, the certificate (production mode: it must chain to a KMS trusted root and name proxy.hostname)\n' +
        'and every HSM node (module, token, PIN, health key) are checked first; any problem stops it with one line saying\n' +
        'what to fix. SIGTERM/SIGINT stop it cleanly; SIGHUP (or xks reload) reloads certificate, key and credentials.',
    )
    .requiredOption('--config <FILE>', 'the appliance configuration (YAML)')
    .action(async (o: { config: string }) => {
      const loaded = await loadConfig(resolve(o.config));
      const logger = createLogger(loaded.config.logging.level);
      const app = await startAppliance(loaded, logger);
      const life = runUntilSignalled(app, logger);
      notifySupervisor(app, life.stop);
    });
}
