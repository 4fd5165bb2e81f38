// Commands an operator reads (xks check) print warnings as words, never JSON log records.
import { Writable } from 'node:stream';
import t from 'tap';
import { createCliLogger } from '../../appliance/logging.js';

t.test('a warning is one "warning: …" line', async (t) => {
  let out = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((out += chunk.toString()), done()) });
  const log = createCliLogger(sink);
  log.warn({ code: 'STAGING_ROOT', daysToExpire: 29 }, 'STAGING: the chain ends at a staging root');
  log.info('not shown');
  t.equal(out, 'warning: STAGING: the chain ends at a staging root\n');
});
