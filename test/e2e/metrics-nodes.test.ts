// Per-node HSM metrics against the demo: every node has its series from the start, and they move
// when a node is frozen (its calls time out, requests fail over to the other node, its state
// leaves ACTIVE) and when a node process is killed (a restart is counted).
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import t from 'tap';
import { xksCommand, type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { b64, meta, type XksClient } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
});

/** GET /metrics on a fresh connection (a reused keep-alive one may be closed under us). */
const scrape = (): Promise<string> =>
  new Promise((resolve, reject) => {
    http
      .get(d.demo.metricsUrl, { agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });

/** One sample from /metrics: the value of `name` with all of `labels`, summed over the rest. */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await scrape();
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      sum += Number(m[3]);
      found = true;
    }
  }
  return found ? sum : NaN;
}

const encrypts = (n: number) =>
  Promise.all(Array.from({ length: n }, () => c.call(`/keys/${d.demo.keys.encryptDecrypt}/encrypt`, { ...meta(), plaintext: b64('metrics'), encryptionAlgorithm: 'AES_GCM' })));
const fault = (node: string, kind: string) => spawnSync(...xksCommand(['fault', '--config', d.demo.configFile, '--node', node, '--kind', kind]), { encoding: 'utf8' }).status;

t.test('every node has its series from the start', async (t) => {
  await encrypts(20);
  t.ok((await metric('xks_proxy_hsm_latency_seconds_count', { operation: 'encrypt' })) >= 20, 'call latency observed per node');
  for (const node of ['hsm-1', 'hsm-2']) {
    t.equal(await metric('xks_proxy_hsm_node_state', { node }), 1, `${node}: in exactly one state`);
    t.ok((await metric('xks_proxy_hsm_sessions', { node })) >= 1, `${node}: session pool size`);
    t.equal(await metric('xks_proxy_hsm_in_flight', { node }), 0, `${node}: nothing in flight when idle`);
    t.equal(await metric('xks_proxy_hsm_node_restarts_total', { node }), 0, `${node}: no restarts`);
    t.equal(await metric('xks_proxy_hsm_failovers_total', { node }), 0, `${node}: no failovers`);
  }
  for (const name of ['xks_proxy_blocks_active', 'xks_proxy_external_key_store_throttle_total', 'xks_proxy_audit_write_errors_total']) {
    t.ok((await scrape()).includes(`# TYPE ${name} `), `${name} is exported`);
  }
  t.ok((await metric('xks_proxy_credential_age_days', { store: d.demo.store, access_key_id: d.demo.accessKeyId })) >= 0, 'credential age per credential set');
});

t.test('a frozen node: its failures, failovers and state move; the other node carries the load', async (t) => {
  // On a busy machine a node can miss a probe: start from both in rotation.
  for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    if ((await metric('xks_proxy_hsm_node_state', { state: 'ACTIVE' })) === 2) break;
  }
  const before2 = (await metric('xks_proxy_hsm_latency_seconds_count', { node: 'hsm-2', operation: 'encrypt' })) || 0;
  t.equal(fault('hsm-1', 'freeze'), 0, 'xks fault --kind freeze');
  t.teardown(() => void fault('hsm-1', 'none'));
  const replies = await encrypts(20);
  t.ok(replies.every((r) => r.status === 200), 'requests still succeed');
  t.ok((await metric('xks_proxy_hsm_failures_total', { node: 'hsm-1', class: 'timeout' })) > 0, 'hsm-1: timeouts counted');
  t.ok((await metric('xks_proxy_hsm_failovers_total', { node: 'hsm-1' })) > 0, 'hsm-1: failovers away from it counted');
  t.equal(await metric('xks_proxy_hsm_node_state', { node: 'hsm-1', state: 'ACTIVE' }), 0, 'hsm-1: no longer ACTIVE');
  t.ok((await metric('xks_proxy_hsm_latency_seconds_count', { node: 'hsm-2', operation: 'encrypt' })) > before2, 'hsm-2: served the requests');
});

t.test('a killed node process is counted as a restart', async (t) => {
  const pid = d.reload().hsmNodes.find((n) => n.id === 'hsm-2')!.pid;
  process.kill(pid, 'SIGKILL');
  const until = Date.now() + 15_000;
  while ((await metric('xks_proxy_hsm_node_restarts_total', { node: 'hsm-2' })) < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  t.equal(await metric('xks_proxy_hsm_node_restarts_total', { node: 'hsm-2' }), 1, 'hsm-2: one restart');
});
