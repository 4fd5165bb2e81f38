// Node health as the cluster tracks it, the CKR_* classification that drives retries, and the
// failure-log limiter.
import t from 'tap';
import { LogLimiter } from '../../xks/hsm/parent/log-limiter.js';
import { MAX_WEIGHT, NodeHealthTracker } from '../../xks/hsm/parent/node-health.js';
import { ckrCode, ckrName, classify } from '../../xks/hsm/child/ckr.js';

const active = () => {
  const h = new NodeHealthTracker();
  h.admit();
  return h;
};

t.test('a new node is UNAVAILABLE until admitted by its first probe', async (t) => {
  const h = new NodeHealthTracker();
  t.equal(h.health, 'UNAVAILABLE');
  t.equal(h.admit(), true);
  t.equal(h.health, 'ACTIVE');
});

t.test('live failures degrade a node, then take it out of rotation', async (t) => {
  const h = active();
  t.equal(h.live('error'), true);
  t.equal(h.health, 'DEGRADED');
  t.equal(h.live('timeout'), false);
  t.equal(h.health, 'DEGRADED');
  t.equal(h.live('error'), true);
  t.equal(h.health, 'UNAVAILABLE');
  t.ok(h.weight < MAX_WEIGHT, 'failures cost weight');
});

t.test('a success between failures resets the count', async (t) => {
  const h = active();
  h.live('error');
  h.live('error');
  h.live('ok');
  h.live('error');
  t.equal(h.health, 'DEGRADED');
});

t.test('DEGRADED clears after a good probe or a run of live successes', async (t) => {
  const a = active();
  a.live('timeout');
  t.equal(a.probe(true), true);
  t.equal(a.health, 'ACTIVE');
  const b = active();
  b.live('timeout');
  for (let i = 0; i < 4; i++) b.live('ok');
  t.equal(b.health, 'DEGRADED');
  b.live('ok');
  t.equal(b.health, 'ACTIVE');
});

t.test('an UNAVAILABLE node needs two consecutive good probes', async (t) => {
  const h = active();
  h.down();
  t.equal(h.health, 'UNAVAILABLE');
  t.equal(h.probe(true), false);
  t.equal(h.probe(false), false, 'a failed probe restarts the count');
  t.equal(h.probe(true), false);
  t.equal(h.health, 'UNAVAILABLE');
  t.equal(h.probe(true), true);
  t.equal(h.health, 'ACTIVE');
  t.ok(h.weight < MAX_WEIGHT, 're-admitted at reduced weight');
});

t.test('late live answers do not change an UNAVAILABLE node', async (t) => {
  const h = active();
  h.down();
  t.equal(h.live('ok'), false);
  t.equal(h.live('error'), false);
  t.equal(h.health, 'UNAVAILABLE');
});

t.test('a failed probe takes an ACTIVE node out at once', async (t) => {
  const h = active();
  t.equal(h.probe(false), true);
  t.equal(h.health, 'UNAVAILABLE');
});

t.test('CKR classification: tag mismatch is an answer only on decrypt', async (t) => {
  for (const ckr of ['CKR_ENCRYPTED_DATA_INVALID', 'CKR_GENERAL_ERROR', 'CKR_FUNCTION_FAILED']) {
    t.equal(classify(ckr, 'decrypt'), 'invalid-ciphertext', `${ckr} on decrypt`);
  }
  t.equal(classify('CKR_GENERAL_ERROR', 'encrypt'), 'device');
  t.equal(classify('CKR_DEVICE_ERROR', 'decrypt'), 'device');
  for (const ckr of ['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT', 'CKR_USER_NOT_LOGGED_IN']) {
    t.equal(classify(ckr, 'encrypt'), 'session', ckr);
  }
  t.equal(classify('CKR_KEY_FUNCTION_NOT_PERMITTED', 'encrypt'), 'key-usage');
  t.equal(classify('CKR_KEY_TYPE_INCONSISTENT', 'decrypt'), 'key-usage');
  t.equal(classify('CKR_PIN_INCORRECT', 'other'), 'login');
  t.equal(classify('CKR_BUFFER_TOO_SMALL', 'encrypt'), 'internal');
});

t.test('CKR names and codes map both ways', async (t) => {
  t.equal(ckrName(0x30), 'CKR_DEVICE_ERROR');
  t.equal(ckrCode('CKR_GENERAL_ERROR'), 5);
  t.equal(ckrCode('CKR_NO_SUCH_THING'), undefined);
  t.equal(ckrName(0x7fff0001), 'CKR_0x7fff0001');
});

t.test('the log limiter lets one message per key through per interval and counts the rest', async (t) => {
  const l = new LogLimiter(1000);
  t.equal(l.allow('a', 0), 0);
  t.equal(l.allow('a', 10), -1);
  t.equal(l.allow('a', 20), -1);
  t.equal(l.allow('b', 30), 0, 'keys are independent');
  t.equal(l.allow('a', 1000), 2, 'reports what it suppressed');
});
