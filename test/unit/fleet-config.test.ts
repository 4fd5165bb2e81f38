// fleet.instances: the instances configured to serve set xksProxyFleetSize (a disagreeing
// proxy.fleetSize is refused), are named once each, and become HAProxy's servers, each with its
// own agent-check port.
import t from 'tap';
import { ConfigError, parseConfig } from '../../appliance/config/load.js';
import { fleetMembers } from '../../appliance/fleet/members.js';
import { optionsFromConfig } from '../../appliance/haproxy-options.js';
import { renderHaproxy } from '../../haproxy/render.js';

const base = (extra: Record<string, unknown> = {}, proxy: Record<string, unknown> = {}) => ({
  proxy: { hostname: 'xks.example.com', ...proxy },
  server: { port: 8443, tls: { certFile: 'cert.pem', keyFile: 'key.pem' } },
  health: { path: '/healthz', agentPort: 8444, httpPort: 8445 },
  metrics: { port: 9100 },
  hsm: { nodes: [{ id: 'hsm-1', module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 't', pin: { env: 'PIN' } }] },
  keyStores: [{ name: 'store1', uriPathPrefix: '/store1', credentialsFile: 'creds.yaml' }],
  ...extra,
});

const fleet = {
  instances: [
    { id: 'xks-a', host: '10.0.1.10' },
    { id: 'xks-b', host: '10.0.1.11', agentPort: 9444 },
    { id: 'xks-c', host: '10.0.1.12', port: 9443 },
  ],
};

t.test('xksProxyFleetSize is the number of instances configured to serve', async (t) => {
  t.equal(parseConfig(base({ fleet }), 'x.yaml').proxy.fleetSize, 3);
  t.equal(parseConfig(base({ fleet }, { fleetSize: 3 }), 'x.yaml').proxy.fleetSize, 3, 'an agreeing fleetSize is fine');
  t.throws(() => parseConfig(base({ fleet }, { fleetSize: 2 }), 'x.yaml'), { name: 'ConfigError', message: /proxy\.fleetSize \(2\) disagrees with the 3 instance\(s\) in fleet\.instances/ });
  t.equal(parseConfig(base({}, { fleetSize: 4 }), 'x.yaml').proxy.fleetSize, 4, 'without a fleet list proxy.fleetSize stands');
  t.equal(parseConfig(base(), 'x.yaml').proxy.fleetSize, 1);
});

t.test('each instance named once, at one address', async (t) => {
  const dupId = { instances: [{ id: 'a', host: '10.0.0.1' }, { id: 'a', host: '10.0.0.2' }] };
  t.throws(() => parseConfig(base({ fleet: dupId }), 'x.yaml'), ConfigError);
  const dupAddr = { instances: [{ id: 'a', host: '10.0.0.1' }, { id: 'b', host: '10.0.0.1', port: 8443 }] };
  t.throws(() => parseConfig(base({ fleet: dupAddr }), 'x.yaml'), { message: /10\.0\.0\.1:8443.*appears twice/ });
  t.throws(() => parseConfig(base({ fleet: { instances: [] } }), 'x.yaml'), { message: /fleet\.instances: list every proxy instance/ });
});

t.test("members take this configuration's ports unless they name their own", async (t) => {
  const members = fleetMembers(parseConfig(base({ fleet }), 'x.yaml'));
  t.same(
    members.map((m) => [m.id, m.host, m.port, m.agentPort, m.healthPort, m.metricsPort]),
    [
      ['xks-a', '10.0.1.10', 8443, 8444, 8445, 9100],
      ['xks-b', '10.0.1.11', 8443, 9444, 8445, 9100],
      ['xks-c', '10.0.1.12', 9443, 8444, 8445, 9100],
    ],
  );
  t.same(
    fleetMembers(parseConfig(base(), 'x.yaml')).map((m) => [m.id, m.host, m.port]),
    [['xks-1', '127.0.0.1', 8443]],
    'no fleet list: a fleet of one, this instance',
  );
});

t.test('the HAProxy render lists every instance of the fleet', async (t) => {
  const text = renderHaproxy(optionsFromConfig(parseConfig(base({ fleet }), 'x.yaml'))).text;
  t.match(text, /server xks-a 10\.0\.1\.10:8443 agent-check agent-port 8444 /);
  t.match(text, /server xks-b 10\.0\.1\.11:8443 agent-check agent-port 9444 /);
  t.match(text, /server xks-c 10\.0\.1\.12:9443 agent-check agent-port 8444 /);
});
