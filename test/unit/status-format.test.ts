// `xks status` shows times as "3 s ago (ISO)", never epoch milliseconds.
import t from 'tap';
import { drainLine } from '../../appliance/cli/control.js';
import { ago, formatStatus } from '../../appliance/cli/status.js';

const now = Date.parse('2026-12-07T12:00:00Z');

t.test('relative times', async (t) => {
  t.equal(ago('2026-12-07T11:59:57Z', now), '3 s ago');
  t.equal(ago('2026-12-07T11:55:00Z', now), '5 min ago');
  t.equal(ago('2026-12-07T09:00:00Z', now), '3 h ago');
  t.equal(ago('2026-12-01T12:00:00Z', now), '6 d ago');
  t.equal(ago(undefined, now), 'never');
});

t.test('the status as an operator reads it', async (t) => {
  const text = formatStatus(
    {
      version: '0.1.0',
      mode: 'production',
      pid: 42,
      configFile: '/etc/xks/prod.yaml',
      startedAt: '2026-12-07T10:00:00.000Z',
      api: { address: '0.0.0.0', port: 443 },
      agent: 'up 100%',
      draining: false,
      certificate: { subject: 'CN=xks.example.com', notAfter: '2027-03-01T00:00:00.000Z', daysToExpire: 83, anchor: 'isrgrootx1' },
      nodes: [{ id: 'hsm-1', health: 'ACTIVE', pid: 43, lastProbeAt: '2026-12-07T11:59:58.000Z', calls: 7 }],
      keyStores: [{ name: 'store1', uriPath: '/store1/kms/xks/v1', enabled: true, keys: 2, credentials: 2, credentialsChangedAt: '2026-11-07T12:00:00.000Z' }],
      blocks: [{ scope: 'key', store: 'store1', keyId: 'k1', reason: 'CHG-7', operator: 'alice', at: '2026-12-07T11:57:00.000Z' }],
      newSection: { keys: ['k1'] },
      audit: { file: '/var/log/xks/audit.log', head: { seq: 12, hash: 'ab'.repeat(32) } },
      stopping: false,
    },
    now,
  );
  t.match(text, /started 2 h ago/);
  t.match(text, /hsm-1 +ACTIVE +pid 43 +last probe 2 s ago \(2026-12-07T11:59:58\.000Z\)/);
  t.match(text, /expires 2027-03-01 \(83 days left\), chain ends at isrgrootx1/);
  t.match(text, /store1 .* 2 credential set\(s\), file changed 30 d ago/);
  t.match(text, /newSection: \{"keys":\["k1"\]\}/, 'sections added by other parts are shown');
  t.match(text, /^  key store1\/k1  by alice 3 min ago  reason: CHG-7$/m, 'blocks in words');
  t.notMatch(text, /\d{13}/, 'no epoch milliseconds');
  t.match(text, /^Audit: \/var\/log\/xks\/audit\.log, last record seq 12$/m, 'the audit file in words, not JSON');
  t.notMatch(text, /stopping|"head"/, 'no raw JSON for known sections');
});

t.test('drain and undrain say what they did in one line', async (t) => {
  t.match(drainLine({ draining: true, agent: 'drain' }), /^draining: agent-check answers "drain", the health check 503.*\n$/);
  t.match(drainLine({ draining: false, agent: 'ready up 100%' }), /^serving: agent-check answers "ready up 100%"/);
});
