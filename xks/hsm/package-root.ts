// Child processes run compiled JavaScript, whether the parent was loaded from dist/ or from the
// TypeScript sources (under tap): resolve dist/<path> from the package root.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  root = dir;
  return dir;
}

/** The compiled entry for a source path such as 'xks/hsm/child/node-main.js'; throws when not built. */
export function compiledEntry(relPath: string): string {
  const file = join(packageRoot(), 'dist', relPath);
  if (!existsSync(file)) throw new Error(`${file} is missing: build the project first (npm run build)`);
  return file;
}
