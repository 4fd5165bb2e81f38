// The appliance's version, from the package it runs from: `xks --version`, status and doctor.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../xks/hsm/package-root.js';

let version: string | undefined;

export function applianceVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}
