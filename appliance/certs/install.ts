// `xks cert install`: a new chain and key, checked as production start checks them, written where
// the configuration points (atomically, mode 0600, owned like the files they replace), then
// hot-swapped through the running appliance's reload. When the appliance refuses them, the
// previous files are put back, so disk and memory never disagree.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { pemCertificates } from '../../gateway/x509.js';
import type { LoadedConfig } from '../config/load.js';
import { controlCall, NotRunningError } from '../control/client.js';
import { CliError } from '../cli/errors.js';
import { recordAdminAction } from '../cli/record-admin.js';
import { writeFileAtomic } from './atomic-write.js';
import type { CertReport } from './check.js';
import { certificateState, checkConfiguredCertificate, enforceCertificatePolicy, type CertificateState } from './configured.js';

export interface InstallResult {
  report: CertReport;
  state: CertificateState;
  /** False when no appliance runs with this configuration: the files wait for the next start. */
  reloaded: boolean;
}

function operatorName(): string {
  try {
    return process.env['SUDO_USER'] || userInfo().username;
  } catch {
    return 'unknown';
  }
}

function leafFingerprint(chainPem: string): string {
  const first = pemCertificates(chainPem)[0];
  return first ? new X509Certificate(first).fingerprint256 : '';
}

interface Previous {
  file: string;
  text: string | undefined;
  owner: { uid: number; gid: number } | undefined;
}

/** The file's content and owner, to restore and to keep. A new file gets its directory's owner
 *  (xks init made /etc/xks/tls the service user's), so root never leaves a key the service cannot read. */
function previous(file: string): Previous {
  // Only root can give a file away; anyone else writes files they own, as before.
  const asRoot = process.getuid?.() === 0;
  try {
    const st = statSync(file);
    return { file, text: readFileSync(file, 'utf8'), owner: asRoot ? { uid: st.uid, gid: st.gid } : undefined };
  } catch {
    const dir = asRoot ? statSync(dirname(file)) : undefined;
    return { file, text: undefined, owner: dir ? { uid: dir.uid, gid: dir.gid } : undefined };
  }
}

export async function installCertificate(loaded: LoadedConfig, chainPem: string, keyPem: string, operator?: { operator: string; reason?: string | undefined }): Promise<InstallResult> {
  const { config } = loaded;
  const report = checkConfiguredCertificate(config, { chainPem, keyPem });
  enforceCertificatePolicy(config, report, () => undefined);
  const { certFile, keyFile } = config.server.tls;
  const old = [previous(keyFile), previous(certFile)];
  const write = (p: Previous, text: string) => writeFileAtomic(p.file, text, 0o600, p.owner);
  write(old[0]!, keyPem);
  write(old[1]!, chainPem);
  let reloaded = true;
  const by = operator ?? { operator: operatorName(), reason: 'xks cert install' };
  const state = certificateState(config, report);
  try {
    await controlCall(loaded.file, '/reload', by);
  } catch (err) {
    if (err instanceof NotRunningError) reloaded = false;
    else {
      for (const p of old) if (p.text !== undefined) write(p, p.text);
      throw new CliError(`the running appliance refused the new certificate (${(err as Error).message}); the previous files are back in place`);
    }
  }
  // What was installed, for the audit trail (never the key). The swap happened: a failed record is
  // reported, not undone.
  const details = { subject: report.subject, notAfter: report.notAfter.toISOString(), sha256: leafFingerprint(chainPem), anchor: state.anchor, reloaded };
  await recordAdminAction(loaded, { action: 'cert-install', ...by, details }).catch((err: Error) =>
    process.stderr.write(`warning: the audit record of this installation was not written: ${err.message}\n`),
  );
  return { report, state, reloaded };
}
