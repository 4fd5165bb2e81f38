// The demo contract (docs/demo.md): every field of demo.json, the KMS console file
// (S11), the HSM node processes, a clean SIGTERM/SIGINT stop with exit 0 and no process left,
// and a second start on the same directory that reuses credentials, PKI and key material.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startDemo, type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { alive, gone, parentOf } from '../helpers/processes.js';
import { b64, meta, request, XksClient } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
});

const mode = (file: string) => statSync(file).mode & 0o777;

t.test('demo.json: identity, endpoint and store fields', async (t) => {
  const j = d.demo;
  t.equal(j.pid, d.proc.pid, 'pid is the demo process');
  t.ok(alive(j.pid), 'pid is live');
  t.same(
    j.instances.map((i) => [i.id, i.pid, i.endpoint, i.configFile]),
    [['xks-1', j.pid, j.endpoint, j.configFile]],
    'instances[]: one entry without --instances, the demo process itself',
  );
  t.equal(j.endpoint, `https://localhost:${d.port}`);
  t.equal(j.store, 'demo');
  t.equal(j.uriPath, '/demo/kms/xks/v1');
  t.equal(j.region, 'us-east-1');
  t.equal(mode(`${d.dir}/demo.json`), 0o600, 'demo.json holds secrets: mode 0600');
  t.notOk('clientCert' in j || 'clientKey' in j || 'wrongClientCert' in j || 'wrongClientKey' in j, 'no client certs without --mtls');
  t.notOk('haproxy' in j, 'no haproxy without --haproxy-port');
  t.same(readdirSync(d.dir).filter((f) => f.startsWith('demo.json') && f !== 'demo.json'), [], 'written atomically: no temp file left');
});

t.test('demo.json: two credential sets in the spec formats (S6, S7), both accepted', async (t) => {
  const sets = [{ accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey }, d.demo.secondCredential];
  for (const [i, cred] of sets.entries()) {
    t.match(cred.accessKeyId, /^[A-Z2-7]{20,30}$/, `set ${i + 1}: access key id`);
    t.match(cred.secretAccessKey, /^[A-Za-z0-9+/=]{43,64}$/, `set ${i + 1}: secret`);
    t.equal((await c.call('/health', meta(), { credential: cred })).status, 200, `set ${i + 1}: authenticates`);
  }
  t.not(sets[0]!.accessKeyId, sets[1]!.accessKeyId);
  t.not(sets[0]!.secretAccessKey, sets[1]!.secretAccessKey);
});

t.test('demo.json: caFile verifies the server for localhost and 127.0.0.1', async (t) => {
  t.ok(d.demo.caFile.startsWith(d.dir), 'under DIR');
  t.match(readFileSync(d.demo.caFile, 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  for (const host of ['localhost', '127.0.0.1']) {
    const r = await request(`https://${host}:${d.port}/healthz`, { method: 'GET', headers: {}, ca: c.ca });
    t.equal(r.status, 200, `${host}: the chain and the SAN verify`);
  }
});

t.test('demo.json: the five keys', async (t) => {
  t.same(d.demo.keys, {
    encryptDecrypt: 'demo-encrypt-decrypt',
    encryptOnly: 'demo-encrypt-only',
    decryptOnly: 'demo-decrypt-only',
    noUsage: 'demo-no-usage',
    disabled: 'demo-disabled',
  });
  for (const id of Object.values(d.demo.keys)) t.equal((await c.call(`/keys/${id}/metadata`, meta())).status, 200, `${id} exists`);
});

t.test('demo.json: healthzUrl and metricsUrl answer', async (t) => {
  t.equal(d.demo.healthzUrl, `https://localhost:${d.port}/healthz`);
  const health = await request(d.demo.healthzUrl, { method: 'GET', headers: {}, ca: c.ca });
  t.equal(health.status, 200, 'healthz: 200, unauthenticated');
  t.equal(d.demo.metricsUrl, `http://127.0.0.1:${d.port + 1}/metrics`, 'metrics on PORT+1');
  const metrics = await fetch(d.demo.metricsUrl);
  t.equal(metrics.status, 200);
  t.match(await metrics.text(), /^# (HELP|TYPE) /m, 'Prometheus text');
});

t.test('metrics: the series KMS-alike dashboards use, with their labels and values', async (t) => {
  // A success, an error and an unauthenticated request, so each series has a sample to show.
  t.equal((await c.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }))).status, 200);
  t.equal((await c.call('/keys/nope/metadata', meta())).status, 404);
  const text = await (await fetch(d.demo.metricsUrl)).text();
  const sample = (re: RegExp) => text.split('\n').find((l) => re.test(l));
  const value = (line: string | undefined) => Number(line?.split(' ').pop());
  const store = d.demo.store;
  t.ok(value(sample(new RegExp(`^xks_proxy_requests_total\\{store="${store}",operation="health",status="200"\\} `))) >= 1, 'xks_proxy_requests_total{store,operation,status}');
  t.ok(value(sample(new RegExp(`^xks_proxy_latency_seconds_count\\{store="${store}",operation="health"\\} `))) >= 1, 'xks_proxy_latency_seconds histogram (count)');
  t.ok(sample(new RegExp(`^xks_proxy_latency_seconds_bucket\\{le="0\\.25",store="${store}",operation="health"\\} `)), 'with a bucket at KMS’s 250 ms');
  t.ok(value(sample(new RegExp(`^xks_proxy_errors_total\\{store="${store}",operation="metadata",error_name="KeyNotFoundException",retryable="false"\\} `))) >= 1, 'xks_proxy_errors_total{error_name,retryable}');
  t.equal(value(sample(/^xks_proxy_hsm_count\{health="ACTIVE"\} /)), d.demo.hsmNodes.length, 'xks_proxy_hsm_count{health="ACTIVE"}: every node');
  t.ok(value(sample(/^xks_proxy_certificate_days_to_expire /)) > 0, 'xks_proxy_certificate_days_to_expire: a positive number of days');
  t.match(text, /^# TYPE xks_proxy_connections_rejected_total counter$/m, 'xks_proxy_connections_rejected_total is a counter');
});

t.test('demo.json: configFile and auditLog live under DIR', async (t) => {
  t.ok(d.demo.configFile.startsWith(d.dir) && existsSync(d.demo.configFile), 'configFile');
  t.ok(d.demo.auditLog.startsWith(d.dir) && d.demo.auditLog.endsWith('/audit.log'), 'auditLog');
});

t.test('S11: kmsProxyConfigFile has the exact KMS console shape, mode 0600, and works', async (t) => {
  const file = d.demo.kmsProxyConfigFile;
  t.ok(file.startsWith(d.dir) && file.endsWith('kms-proxy-config.json'));
  t.equal(mode(file), 0o600, 'mode 0600');
  const j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>;
  t.same(Object.keys(j), ['XksProxyUriPath', 'XksProxyAuthenticationCredential']);
  t.same(Object.keys(j['XksProxyAuthenticationCredential']), ['AccessKeyId', 'RawSecretAccessKey']);
  t.equal(j['XksProxyUriPath'], d.demo.uriPath);
  const cred = { accessKeyId: j['XksProxyAuthenticationCredential'].AccessKeyId, secretAccessKey: j['XksProxyAuthenticationCredential'].RawSecretAccessKey };
  t.same(cred, { accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey }, 'the first credential set');
  t.equal((await c.call('/health', meta(), { credential: cred })).status, 200, 'what KMS would be given authenticates');
});

t.test('demo.json: hsmNodes are live child processes holding the PKCS#11 module', async (t) => {
  const nodes = d.demo.hsmNodes;
  t.same(nodes.map((n) => n.id), ['hsm-1', 'hsm-2'], 'two nodes by default');
  t.equal(new Set(nodes.map((n) => n.pid)).size, nodes.length, 'one process each');
  for (const n of nodes) {
    t.ok(alive(n.pid), `${n.id}: pid ${n.pid} is live`);
    t.equal(parentOf(n.pid), d.demo.pid, `${n.id}: a child of the demo`);
    t.match(readFileSync(`/proc/${n.pid}/maps`, 'utf8'), /libsofthsm2\.so/, `${n.id}: has the PKCS#11 module loaded`);
  }
  t.notMatch(readFileSync(`/proc/${d.demo.pid}/maps`, 'utf8'), /libsofthsm2\.so/, 'the main process does not');
});

t.test('stdout is JSON lines', async (t) => {
  const lines = d.output().split('\n').filter((l) => l !== '');
  t.ok(lines.length > 0);
  for (const line of lines) t.doesNotThrow(() => JSON.parse(line), line.slice(0, 80));
});

t.test('SIGTERM exits 0 and leaves no HSM node; a second start on the same DIR reuses everything', async (t) => {
  const first = d.demo;
  const sealed = await c.call(`/keys/${first.keys.encryptDecrypt}/encrypt`, { ...meta(), plaintext: b64('across restarts'), encryptionAlgorithm: 'AES_GCM' });
  t.equal(sealed.status, 200);
  const kmsFile = readFileSync(first.kmsProxyConfigFile, 'utf8');
  const ca = readFileSync(first.caFile, 'utf8');
  c.close();

  t.equal(await d.stop(), 0, 'SIGTERM: exit code 0');
  t.ok(await gone([first.pid, ...first.hsmNodes.map((n) => n.pid)]), 'the demo and its HSM node processes are gone');

  t.notOk(existsSync(join(d.dir, 'demo.json')), 'a clean stop removes demo.json: it means "ready"');
  d = await startDemo(['--nodes', '3'], { dir: d.dir });
  c = new XksClient(d.demo);
  const second = d.demo;
  t.not(second.pid, first.pid, 'a new process');
  t.same(
    [second.accessKeyId, second.secretAccessKey, second.secondCredential],
    [first.accessKeyId, first.secretAccessKey, first.secondCredential],
    'the same credentials',
  );
  t.equal(readFileSync(second.kmsProxyConfigFile, 'utf8'), kmsFile, 'the same KMS console file');
  t.equal(readFileSync(second.caFile, 'utf8'), ca, 'the same CA');
  t.same(second.hsmNodes.map((n) => n.id), ['hsm-1', 'hsm-2', 'hsm-3'], '--nodes 3 adds a node');
  const health = await c.call('/health', meta());
  t.same((health.json?.ekmFleetDetails as Array<{ healthStatus: string }>).map((e) => e.healthStatus), ['ACTIVE', 'ACTIVE', 'ACTIVE']);
  for (let i = 0; i < 6; i++) {
    // Several calls, so more than one node is likely asked: every node holds the same key.
    const dec = await c.call(`/keys/${second.keys.encryptDecrypt}/decrypt`, { ...meta(), ...sealed.json, encryptionAlgorithm: 'AES_GCM' });
    t.equal(dec.json?.plaintext, b64('across restarts'), `the first run's ciphertext decrypts (${i + 1})`);
  }

  c.close();
  const exit = new Promise<number | null>((res) => d.proc.once('exit', res));
  d.proc.kill('SIGINT');
  t.equal(await exit, 0, 'SIGINT: exit code 0');
  t.ok(await gone([second.pid, ...second.hsmNodes.map((n) => n.pid)]), 'nothing left running');
});
