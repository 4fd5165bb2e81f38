// Where the control socket of one appliance instance lives. One per configuration file, so two
// instances whose configurations share a directory never meet: `control.socket` when configured
// (systemd: under the instance's RuntimeDirectory), else `<dir>/xks-control/<config name>.sock`.
// Operator commands find it from the configuration file alone, without validating the rest of it
// (status must work while a secret file is being rotated).
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { parse } from 'yaml';

/** "prod" for /etc/xks/prod.yaml: the instance's name. */
export function instanceName(configFile: string): string {
  return basename(configFile).replace(/\.(ya?ml|json)$/i, '');
}

export function defaultControlSocket(configFile: string): string {
  return join(dirname(configFile), 'xks-control', `${instanceName(configFile)}.sock`);
}

/** `configured` is control.socket as written (relative paths are relative to the configuration). */
export function controlSocketPath(configFile: string, configured?: string): string {
  if (!configured) return defaultControlSocket(configFile);
  return isAbsolute(configured) ? configured : resolve(dirname(configFile), configured);
}

/** The socket for a configuration file, read without the full validation `serve` does. */
export function controlSocketOf(configFile: string): string {
  let configured: unknown;
  try {
    const doc = parse(readFileSync(configFile, 'utf8')) as { control?: { socket?: unknown } } | null;
    configured = doc?.control?.socket;
  } catch {
    // Unreadable or broken: the default path; the connection error then says what is missing.
  }
  return controlSocketPath(configFile, typeof configured === 'string' ? configured : undefined);
}
