// Variant choice and HAProxy durations.
import t from 'tap';
import { formatDuration, parseDuration } from '../../haproxy/duration.js';
import { canLoadVariant, chooseVariant, parseHaproxyVersion } from '../../haproxy/variant.js';

t.test('haproxy -v output', async (t) => {
  t.equal(parseHaproxyVersion('HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/'), '2.6.12');
  t.equal(parseHaproxyVersion('HA-Proxy version 2.9.7-1ppa1~jammy 2024/04/06'), '2.9.7');
  t.equal(parseHaproxyVersion('HAProxy version 3.1-dev3'), '3.1');
  t.equal(parseHaproxyVersion('command not found'), undefined);
});

t.test('which versions load which variant', async (t) => {
  t.ok(canLoadVariant('2.6.12', '2.6'));
  t.notOk(canLoadVariant('2.6.12', '2.9'));
  t.notOk(canLoadVariant('2.8.5', '2.9'));
  t.ok(canLoadVariant('2.9.0', '2.9'));
  t.ok(canLoadVariant('3.0.5', '2.9'));
  t.ok(canLoadVariant('3.0', '2.6'));
});

t.test('auto picks by the installed version and says why', async (t) => {
  t.same(chooseVariant('auto', '2.6.12').variant, '2.6');
  t.match(chooseVariant('auto', '2.6.12').reason, /2\.6\.12, older than 2\.9/);
  t.same(chooseVariant('auto', '3.0.5').variant, '2.9');
  t.match(chooseVariant('auto', '3.0.5').reason, /3\.0\.5, which can forward PROXY v2 TLVs/);
  t.same(chooseVariant('auto', undefined).variant, '2.6');
  t.match(chooseVariant('auto', undefined).reason, /no haproxy was found on PATH/);
  t.same(chooseVariant('2.9', '2.6.12'), { variant: '2.9', reason: '--variant 2.9 was asked for' });
});

t.test('durations', async (t) => {
  t.equal(formatDuration(390_000), '390s');
  t.equal(formatDuration(60_000), '1m');
  t.equal(formatDuration(3_600_000), '1h');
  t.equal(formatDuration(1500), '1500ms');
  t.equal(formatDuration(0), '0');
  t.throws(() => formatDuration(1.5));
  t.equal(parseDuration('10s'), 10_000);
  t.equal(parseDuration('5000'), 5000, 'a bare number is milliseconds');
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration('6m'), 360_000);
  t.equal(parseDuration('500us'), 0.5);
  t.equal(parseDuration('1d'), 86_400_000);
  t.equal(parseDuration('ten'), undefined);
});
