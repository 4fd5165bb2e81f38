// The mutation check (`npm run mutation`) is not part of `npm test`, so a refactoring could leave
// one of its breakages pointing at text that no longer exists, and the claim it guards unchecked
// until someone runs it. Here, every test run: each breakage still finds its text exactly once,
// and the tests it names exist.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BREAKAGES } from '../mutation/breakages.js';
import { packageRoot } from '../../xks/hsm/package-root.js';

const root = packageRoot();

t.test('every breakage of the mutation check still applies to the source', async (t) => {
  t.ok(BREAKAGES.length >= 17, 'the breakages are all there');
  t.equal(new Set(BREAKAGES.map((b) => b.name)).size, BREAKAGES.length, 'names are unique');
  for (const b of BREAKAGES) {
    const text = readFileSync(join(root, b.file), 'utf8');
    t.equal(text.split(b.find).length - 1, 1, `${b.name}: its text occurs once in ${b.file}`);
    t.ok(b.tests.length > 0 && b.tests.every((f) => existsSync(join(root, f))), `${b.name}: its tests exist`);
  }
});
