// Configuration validation refuses what the security review found exploitable: one HSM label
// behind two keys (or a key and the health prober), client auth without a subject list, no regions.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkConfig, ConfigError, parseConfig, parseYaml } from '../../appliance/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'xks-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
};
const creds = file('creds.yaml', `credentials:\n  - accessKeyId: ${'A'.repeat(20)}\n    secretAccessKey: ${'b'.repeat(44)}\n`);
const key = file('key.pem', 'not read by checkConfig beyond its mode\n');

const base = (over: { keyStores?: object[]; proxy?: object; tls?: object; healthKeyLabel?: string } = {}) => ({
  proxy: { hostname: 'xks.example.com', ...over.proxy },
  server: { tls: { certFile: 'c.pem', keyFile: key, ...over.tls } },
  hsm: { healthKeyLabel: over.healthKeyLabel ?? 'xks-health-test', nodes: [{ id: 'n1', module: '/x.so', tokenLabel: 't', pin: { env: 'PIN' } }] },
  keyStores: over.keyStores ?? [{ name: 's1', uriPathPrefix: '/s1', credentialsFile: creds, keys: [{ id: 'k1', label: 'L1' }] }],
});
const store = (name: string, keys: Array<{ id: string; label: string }>) => ({ name, uriPathPrefix: `/${name}`, credentialsFile: creds, keys });
const check = (raw: object) => checkConfig(parseConfig(raw, 'test.yaml'));

t.test('a valid configuration passes', async (t) => {
  t.doesNotThrow(() => check(base()));
});

t.test('one HSM label behind two keys is refused: across stores, within a store, and the health key', async (t) => {
  t.throws(() => check(base({ keyStores: [store('a', [{ id: 'k1', label: 'L1' }]), store('b', [{ id: 'k2', label: 'L1' }])] })), { name: 'ConfigError', message: /label "L1" is already used by keyStores\[0\] \(a\) key "k1"/ });
  t.throws(() => check(base({ keyStores: [store('a', [{ id: 'k1', label: 'L1' }, { id: 'k2', label: 'L1' }])] })), ConfigError);
  t.throws(() => check(base({ keyStores: [store('a', [{ id: 'k1', label: 'xks-health-test' }])] })), { message: /already used by hsm\.healthKeyLabel/ });
  t.throws(() => check(base({ healthKeyLabel: 'L1' })), { message: /hsm\.healthKeyLabel/ });
});

t.test('client auth never accepts any subject: no regions and no subjects is refused', async (t) => {
  t.throws(() => check(base({ proxy: { regions: [] }, tls: { clientAuth: { caFile: 'ca.pem' } } })), { message: /proxy\.regions: list at least one AWS region/ });
  t.throws(() => check(base({ tls: { clientAuth: { caFile: 'ca.pem', subjects: [] } } })), { message: /subjects/ });
  t.doesNotThrow(() => check(base({ tls: { clientAuth: { caFile: 'ca.pem' } } })), 'the default: KMS’s subjects for proxy.regions');
});

t.test('a YAML syntax error names its line and never quotes the text', async (t) => {
  const text = 'credentials:\n  - accessKeyId: XKSABCDEFGHIJKLMNOPQ\n   secretAccessKey: "s3cretValue\n';
  t.throws(() => parseYaml(text, 'creds.yaml'), { message: /^creds\.yaml line 3: not valid YAML \(\w+\)$/ });
  t.throws(() => parseYaml('a: 1\nb:\n  c: [\n', 'x.yaml'), { message: /^x\.yaml line \d: not valid YAML/ });
  try {
    parseYaml(text, 'creds.yaml');
  } catch (err) {
    t.notMatch((err as Error).message, /s3cret/, 'the secret is not echoed');
  }
});

t.test('a misspelt section: the spelling is named first, then what is missing, in words', async (t) => {
  const { proxy, ...rest } = base();
  const err = t.throws(() => parseConfig({ ...rest, prxy: proxy }, 'test.yaml')) as Error;
  const [first, second] = err.message.split('\n');
  t.equal(first, 'test.yaml: (top level): unknown field "prxy": remove it or check its spelling');
  t.match(second, /^test\.yaml: proxy: missing: add it/);
});
