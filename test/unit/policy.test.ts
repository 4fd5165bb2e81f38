import t, { type Test } from 'tap';
import { authorize, AccessDenied, globMatch } from '../../xks/policy.js';
import { buildKeyStore } from '../../xks/keystore.js';
import { TokenBucket } from '../../xks/quota.js';
import type { KeyStoreConfig } from '../../appliance/config/schema.js';

const key = { id: 'k1', label: 'l1', usage: ['ENCRYPT', 'DECRYPT'] as ('ENCRYPT' | 'DECRYPT')[], enabled: true };
const store = (extra: Partial<KeyStoreConfig> = {}, keyExtra: object = {}) =>
  buildKeyStore({ name: 's1', uriPathPrefix: '/s1', enabled: true, credentialsFile: '/x', keys: [{ ...key, ...keyExtra }], ...extra } as KeyStoreConfig, []);
const md = (extra: object = {}) => ({ kmsRequestId: 'r', kmsOperation: 'Encrypt', awsPrincipalArn: 'arn:aws:iam::111122223333:role/App', raw: {}, ...extra });

function denied(t: Test, input: Parameters<typeof authorize>[0], rule: string) {
  try {
    authorize(input);
    t.fail(`expected a deny by ${rule}`);
  } catch (err) {
    t.ok(err instanceof AccessDenied, 'AccessDenied');
    t.equal((err as AccessDenied).rule, rule, `denied by ${rule}`);
    t.equal((err as AccessDenied).status, 403);
    t.equal((err as AccessDenied).errorName, 'AccessDeniedException');
  }
}

t.test('glob patterns: * matches any run, everything else literal', async (t) => {
  t.ok(globMatch('arn:aws:iam::111122223333:*', 'arn:aws:iam::111122223333:role/App'));
  t.notOk(globMatch('arn:aws:iam::111122223333:*', 'arn:aws:iam::999922223333:role/App'));
  t.notOk(globMatch('arn:aws:iam::1.1:*', 'arn:aws:iam::121:x'), 'a dot is literal');
  t.ok(globMatch('*', ''));
});

t.test('no policy allows', async (t) => {
  const s = store();
  t.doesNotThrow(() => authorize({ store: s, key: s.keys.get('k1')!, metadata: md(), sourceAddress: '10.0.0.1', connectionVpceId: undefined }));
});

t.test('store allowlist and VPC endpoints', async (t) => {
  const s = store({ allow: ['10.0.0.0/8'], vpcEndpoints: ['vpce-0123456789abcdef0'] });
  const k = s.keys.get('k1')!;
  denied(t, { store: s, key: k, metadata: md(), sourceAddress: '192.168.1.1', connectionVpceId: 'vpce-0123456789abcdef0' }, 'keyStores[s1].allow');
  denied(t, { store: s, key: k, metadata: md(), sourceAddress: '10.1.1.1', connectionVpceId: 'vpce-0aaaaaaaaaaaaaaaa' }, 'keyStores[s1].vpcEndpoints');
  denied(t, { store: s, key: k, metadata: md(), sourceAddress: '10.1.1.1', connectionVpceId: undefined }, 'keyStores[s1].vpcEndpoints');
  t.doesNotThrow(() => authorize({ store: s, key: k, metadata: md(), sourceAddress: '10.1.1.1', connectionVpceId: 'vpce-0123456789abcdef0' }));
  // The body's awsSourceVpce is the caller's endpoint to KMS, not the path to this proxy.
  denied(t, { store: s, key: k, metadata: md({ awsSourceVpce: 'vpce-0123456789abcdef0' }), sourceAddress: '10.1.1.1', connectionVpceId: undefined }, 'keyStores[s1].vpcEndpoints');
  denied(t, { store: s, key: k, metadata: md({ awsSourceVpce: 'vpce-0123456789abcdef0' }), sourceAddress: '10.1.1.1', connectionVpceId: 'vpce-0bbbbbbbbbbbbbbbb' }, 'keyStores[s1].vpcEndpoints');
});

t.test('awsSourceVpces: a rule of its own on the body field, separate from the TLV rule', async (t) => {
  const s = store({}, { policy: { awsSourceVpces: ['vpce-0123456789abcdef0'], requireViaService: false } });
  const k = s.keys.get('k1')!;
  const base = { store: s, key: k, sourceAddress: '10.0.0.1' };
  t.doesNotThrow(() => authorize({ ...base, metadata: md({ awsSourceVpce: 'vpce-0123456789abcdef0' }), connectionVpceId: undefined }), 'the caller’s endpoint matches');
  denied(t, { ...base, metadata: md({ awsSourceVpce: 'vpce-0aaaaaaaaaaaaaaaa' }), connectionVpceId: undefined }, 'keyStores[s1].keys[k1].policy.awsSourceVpces');
  denied(t, { ...base, metadata: md(), connectionVpceId: 'vpce-0123456789abcdef0' }, 'keyStores[s1].keys[k1].policy.awsSourceVpces');
});

t.test('policy rules on principals, operations, via services, at store and key level', async (t) => {
  const s = store(
    { policy: { principals: ['arn:aws:iam::111122223333:*'], operations: ['Encrypt', 'Decrypt', 'GenerateDataKey'], viaServices: ['ebs'], requireViaService: false } },
    { policy: { principals: ['arn:aws:iam::111122223333:role/App'], requireViaService: true, viaServices: ['ebs'] } },
  );
  const k = s.keys.get('k1')!;
  const base = { store: s, key: k, sourceAddress: '10.0.0.1', connectionVpceId: undefined };
  denied(t, { ...base, metadata: md({ awsPrincipalArn: 'arn:aws:iam::999900001111:role/App' }) }, 'keyStores[s1].policy.principals');
  denied(t, { ...base, metadata: md({ kmsOperation: 'ReEncrypt', kmsViaService: 'ebs' }) }, 'keyStores[s1].policy.operations');
  denied(t, { ...base, metadata: md({ kmsViaService: 's3' }) }, 'keyStores[s1].policy.viaServices');
  denied(t, { ...base, metadata: md() }, 'keyStores[s1].keys[k1].policy.viaServices');
  denied(t, { ...base, metadata: md({ awsPrincipalArn: 'arn:aws:iam::111122223333:role/Other', kmsViaService: 'ebs' }) }, 'keyStores[s1].keys[k1].policy.principals');
  t.doesNotThrow(() => authorize({ ...base, metadata: md({ kmsViaService: 'ebs' }) }));
});

t.test('token bucket: burst, then refusal, then refill (on a clock the test drives)', async (t) => {
  let now = 1000;
  const b = new TokenBucket(1000, 5, () => now);
  let ok = 0;
  for (let i = 0; i < 20; i++) if (b.take()) ok++;
  t.equal(ok, 5, 'only the burst passes at once');
  now += 0.5;
  t.notOk(b.take(), 'half a token is not a token');
  now += 0.5;
  t.ok(b.take(), 'refilled after 1 ms at 1000/s');
  t.notOk(b.take(), 'one token, one request');
  now += 60_000;
  ok = 0;
  for (let i = 0; i < 20; i++) if (b.take()) ok++;
  t.equal(ok, 5, 'a long pause refills up to the burst, no more');
});
