// The shipped Grafana dashboard and Prometheus alerting rules: they parse, have the shape their
// tools need, and every metric they name is one the appliance exports (a renamed metric would
// otherwise leave a silently empty panel or an alert that never fires).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { ROOT } from '../helpers/demo.js';
import { Metrics } from '../../xks/metrics.js';
import type { NodeStatus } from '../../xks/hsm/types.js';

const dir = join(ROOT, 'appliance', 'monitoring');
/** Prometheus' own series, not ours. */
const BUILTIN = new Set(['up']);

async function exported(): Promise<Set<string>> {
  const m = new Metrics();
  const node: NodeStatus = { id: 'hsm-1', model: 'SoftHSM', health: 'ACTIVE', pid: 1, lastProbeAt: undefined };
  m.watchHsm({ status: () => [node], onEvent: () => {}, onChange: () => {} });
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    // Histograms are queried through their series.
    if (String(metric.type) === 'histogram') for (const s of ['_bucket', '_count', '_sum']) names.add(metric.name + s);
  }
  return names;
}

/** Metric names in a PromQL expression: ours (xks_proxy_...), Node's process_... and nodejs_..., and up. */
function metricsIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  return [...withoutStrings.matchAll(/\b(xks_proxy_\w+|process_\w+|nodejs_\w+|up)\b(?=\s*[{[)\s]|$)/g)].map((m) => m[1]!);
}

t.test('the alerting rules parse, are complete, and name only exported metrics', async (t) => {
  const names = await exported();
  const rules = parse(readFileSync(join(dir, 'xks-alerts.yml'), 'utf8')) as { groups: Array<{ name: string; rules: Array<Record<string, any>> }> };
  const all = rules.groups.flatMap((g) => g.rules);
  t.ok(all.length >= 10, `${all.length} rules`);
  for (const r of all) {
    t.match(r, { alert: /^Xks[A-Za-z0-9]+$/, expr: String, labels: { severity: /^(critical|warning|info)$/ }, annotations: { summary: String } }, `${r['alert']}: complete`);
    const used = metricsIn(r['expr'] as string);
    t.ok(used.length > 0, `${r['alert']}: names a metric`);
    for (const name of used) t.ok(names.has(name) || BUILTIN.has(name), `${r['alert']}: ${name} exists`);
  }
  const covered = all.map((r) => r['expr'] as string).join('\n');
  for (const [what, metric] of Object.entries({
    'latency p99': 'xks_proxy_latency_seconds_bucket',
    'errors by class': 'xks_proxy_errors_total',
    'node down': 'xks_proxy_hsm_node_state',
    'certificate days': 'xks_proxy_certificate_days_to_expire',
    'credential age': 'xks_proxy_credential_age_days',
    'audit write errors': 'xks_proxy_audit_write_errors_total',
  })) {
    t.ok(covered.includes(metric), `an alert on ${what}`);
  }
});

t.test('the Grafana dashboard parses, its panels are well formed, and it names only exported metrics', async (t) => {
  const names = await exported();
  const dash = JSON.parse(readFileSync(join(dir, 'xks-dashboard.json'), 'utf8')) as { uid: string; panels: Array<Record<string, any>> };
  t.ok(dash.uid, 'has a uid (stable links)');
  const ids = dash.panels.map((p) => p['id']);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const targets = dash.panels.flatMap((p) => (p['targets'] ?? []) as Array<{ expr: string }>);
  t.ok(targets.length >= 15, `${targets.length} queries`);
  for (const { expr } of targets) {
    const used = metricsIn(expr);
    t.ok(used.length > 0, `names a metric: ${expr}`);
    for (const name of used) t.ok(names.has(name), `${name} exists`);
  }
  const perNode = targets.filter((x) => x.expr.includes('xks_proxy_hsm_') && x.expr.includes('node'));
  t.ok(perNode.length >= 6, 'per-node HSM panels');
});
