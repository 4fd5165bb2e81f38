// An HSM node's settings as the operator writes them: sessionKeyCopies (README "Session copies of
// the keys") is auto unless set, takes true or false, and anything else is refused naming the values.
import t from 'tap';
import { parseConfig } from '../../appliance/config/load.js';

const raw = (node: object) => ({
  proxy: { hostname: 'xks.example.com' },
  server: { tls: { certFile: 'c.pem', keyFile: 'k.pem' } },
  hsm: { healthKeyLabel: 'xks-health-test', nodes: [{ id: 'n1', module: '/x.so', tokenLabel: 't', pin: { env: 'PIN' }, ...node }] },
  keyStores: [{ name: 's1', uriPathPrefix: '/s1', credentialsFile: 'creds.yaml', keys: [{ id: 'k1', label: 'L1' }] }],
});
const copies = (node: object) => parseConfig(raw(node), 'test.yaml').hsm.nodes[0]!.sessionKeyCopies;

t.test('sessionKeyCopies: auto by default, true and false as written, nothing else', async (t) => {
  t.equal(copies({}), 'auto');
  t.equal(copies({ sessionKeyCopies: true }), true);
  t.equal(copies({ sessionKeyCopies: false }), false);
  for (const bad of ['yes', 'on', 1, null]) {
    t.throws(() => copies({ sessionKeyCopies: bad }), { name: 'ConfigError', message: /hsm\.nodes\[0\]\.sessionKeyCopies: must be auto, true or false/ }, String(bad));
  }
});
