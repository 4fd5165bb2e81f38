// An administrative action done by a CLI command outside the service (e.g. kms-config) goes into
// the same audit chain: through the running appliance (the only writer of its file), or, when
// none runs, appended by this command itself.
import { existsSync } from 'node:fs';
import type { LoadedConfig } from '../config/load.js';
import { controlCall } from '../control/client.js';
import { controlSocketPath } from '../control/socket-path.js';
import type { AdminAction } from '../../xks/audit/entry.js';
import { openAuditLog } from '../../xks/audit/log.js';
import { CliError } from './errors.js';

export async function recordAdminAction(loaded: LoadedConfig, action: AdminAction): Promise<void> {
  const audit = loaded.config.audit;
  if (!audit) return;
  if (existsSync(controlSocketPath(loaded.file, loaded.config.control?.socket))) {
    await controlCall(loaded.file, '/audit', action);
    return;
  }
  try {
    const log = openAuditLog({ file: audit.file });
    log.admin(action);
    await log.close();
  } catch (err) {
    throw new CliError(`done, but not recorded in the audit trail: ${(err as Error).message}`);
  }
}
