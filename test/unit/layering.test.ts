// The import direction of docs/architecture.md ("Layers"), checked on every source file:
// appliance → gateway → xks → xks/hsm, appliance → haproxy; inside xks/hsm the parent and child
// processes share only the files at xks/hsm/ itself, and provisioning (admin/) is for appliance/ only.
// Imports are read with TypeScript's own pre-processor, so `import type`, re-exports, multi-line
// imports and dynamic import() all count.
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { ROOT } from '../helpers/demo.js';

type Layer = 'appliance' | 'haproxy' | 'gateway' | 'xks' | 'hsm' | 'hsm/parent' | 'hsm/child' | 'hsm/admin';

/** The layer of a repository path, or undefined outside the four source folders. */
function layerOf(path: string): Layer | undefined {
  for (const sub of ['parent', 'child', 'admin'] as const) if (path.startsWith(`xks/hsm/${sub}/`)) return `hsm/${sub}`;
  if (path.startsWith('xks/hsm/')) return 'hsm';
  const top = path.split('/')[0];
  return top === 'appliance' || top === 'haproxy' || top === 'gateway' || top === 'xks' ? top : undefined;
}

/** What each layer may import (besides itself). */
const ALLOWED: Record<Layer, readonly Layer[]> = {
  appliance: ['haproxy', 'gateway', 'xks', 'hsm', 'hsm/parent', 'hsm/child', 'hsm/admin'],
  haproxy: [],
  gateway: ['xks', 'hsm'],
  xks: ['hsm'],
  // The files shared across the process boundary (protocol, types, options, errors) stand alone.
  hsm: [],
  'hsm/parent': ['hsm'],
  'hsm/child': ['hsm'],
  'hsm/admin': ['hsm', 'hsm/child'],
};

/** Why `from` may not import `to` (both repository paths), or null when it may. */
export function violation(from: string, to: string): string | null {
  const a = layerOf(from);
  if (!a) return null;
  const b = layerOf(to);
  if (!b) return `${from} imports ${to}, outside the source layers`;
  if (a === b || ALLOWED[a].includes(b)) return null;
  return `${from} (${a}) imports ${to} (${b}) against the direction appliance → gateway → xks → xks/hsm, appliance → haproxy`;
}

/** The repository paths a source file imports (relative specifiers only; packages are not layers). */
export function importsOf(path: string, source: string): string[] {
  const { importedFiles } = ts.preProcessFile(source, true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => posix.normalize(posix.join(posix.dirname(path), spec)).replace(/\.js$/, '.ts'));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => posix.join(posix.relative(ROOT, e.parentPath).split('\\').join('/'), e.name));
}

t.test('no import in gateway/, xks/, haproxy/, appliance/ runs against the direction', async (t) => {
  const files = ['gateway', 'xks', 'haproxy', 'appliance'].flatMap(sourceFiles);
  t.ok(files.length > 50, `found ${files.length} source files`);
  const found: string[] = [];
  let edges = 0;
  for (const file of files) {
    for (const target of importsOf(file, readFileSync(join(ROOT, file), 'utf8'))) {
      edges++;
      const why = violation(file, target);
      if (why) found.push(why);
    }
  }
  t.ok(edges > 200, `checked ${edges} imports`);
  t.same(found, [], 'imports against the direction');
});

t.test('the check catches imports against the direction', async (t) => {
  const bad: Array<[string, string]> = [
    ['gateway/router.ts', 'appliance/config/schema.ts'],
    ['xks/keys.ts', 'appliance/config/schema.ts'],
    ['xks/policy.ts', 'gateway/listener.ts'],
    ['xks/keys.ts', 'haproxy/options.ts'],
    ['haproxy/render.ts', 'gateway/router.ts'],
    ['haproxy/render.ts', 'xks/options.ts'],
    ['haproxy/render.ts', 'appliance/config/schema.ts'],
    ['xks/hsm/parent/cluster.ts', 'xks/errors.ts'],
    ['xks/hsm/child/node-service.ts', 'xks/cdiv.ts'],
    ['xks/hsm/parent/node-client.ts', 'xks/hsm/child/pkcs11.ts'],
    ['xks/hsm/child/node-main.ts', 'xks/hsm/parent/cluster.ts'],
    ['xks/hsm/protocol.ts', 'xks/hsm/child/ckr.ts'],
    ['xks/hsm/child/node-service.ts', 'xks/hsm/admin/token-admin.ts'],
    ['gateway/listener.ts', 'xks/hsm/child/pkcs11.ts'],
    ['gateway/listener.ts', 'test/helpers/demo.ts'],
  ];
  for (const [from, to] of bad) t.not(violation(from, to), null, `${from} → ${to}`);
  const good: Array<[string, string]> = [
    ['appliance/service.ts', 'xks/hsm/parent/cluster.ts'],
    ['appliance/demo/tokens.ts', 'xks/hsm/admin/token-admin.ts'],
    ['appliance/haproxy-options.ts', 'haproxy/options.ts'],
    ['gateway/pipeline.ts', 'xks/service.ts'],
    ['xks/api/health.ts', 'xks/hsm/types.ts'],
    ['xks/hsm/parent/node-client.ts', 'xks/hsm/protocol.ts'],
    ['xks/hsm/child/pkcs11.ts', 'xks/hsm/options.ts'],
  ];
  for (const [from, to] of good) t.equal(violation(from, to), null, `${from} → ${to}`);
});

t.test('every form of import is read', async (t) => {
  const source = [
    "import type { Config } from '../appliance/config/schema.js';",
    "import {\n  a,\n  b,\n} from './x.js';",
    "export { c } from '../xks/errors.js';",
    "export * from './y.js';",
    "import './side-effect.js';",
    "const m = await import('../haproxy/render.js');",
    "import pino from 'pino';",
  ].join('\n');
  t.same(importsOf('gateway/z.ts', source).sort(), [
    'appliance/config/schema.ts',
    'gateway/side-effect.ts',
    'gateway/x.ts',
    'gateway/y.ts',
    'haproxy/render.ts',
    'xks/errors.ts',
  ]);
});

t.test('nothing in the repository points at files outside it', async (t) => {
  // Design notes and rule ids live in docs/; a reference to a sibling folder breaks for every
  // reader of a clone. (The pattern is assembled so this file does not match itself.)
  const outside = new RegExp(['\\.\\./shared\\b', '\\bshared/[\\w-]+\\.md\\b'].join('|'));
  const files = ['gateway', 'xks', 'haproxy', 'appliance', 'test', 'docs', 'bin']
    .flatMap((dir) =>
      readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
        .filter((e) => e.isFile() && /\.(ts|md|js|json|yaml|service)$|^[a-z-]+$/.test(e.name))
        .map((e) => join(e.parentPath, e.name)),
    )
    .concat([join(ROOT, 'README.md')]);
  const found = files.filter((f) => outside.test(readFileSync(f, 'utf8'))).map((f) => posix.relative(ROOT, f));
  t.same(found, [], 'files that refer to the sibling shared folder');
});
