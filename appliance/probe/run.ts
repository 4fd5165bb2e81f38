// `xks probe`: prove an XKS endpoint end to end as KMS sees it. TLS first (as KMS connects),
// then the conformance checks on one keep-alive connection, then latency. Any vendor's proxy:
// nothing here assumes this appliance's choices beyond what the spec allows.
import { authChecks, everyReplyChecks, routingChecks, validationChecks } from './checks-http.js';
import { cryptoChecks } from './checks-crypto.js';
import { tlsChecks } from './checks-tls.js';
import { Connection, requestMetadata, XksApi } from './client.js';
import { latencyChecks, type LatencyOptions } from './latency.js';
import { summarize, type ProbeReport } from './report.js';
import { describeError, Results } from './results.js';
import type { ProbeTarget } from './target.js';

export interface ProbeHooks {
  phase?: (name: string) => void;
  check?: (done: number, name: string) => void;
}

/** Thrown when the endpoint cannot be reached at all: one line, no table of identical failures. */
export class UnreachableError extends Error {}

export async function runProbe(target: ProbeTarget, latency: LatencyOptions, hooks: ProbeHooks = {}): Promise<ProbeReport> {
  const startedAt = new Date().toISOString();
  const results = new Results(hooks.check);
  const conn = new Connection(target, target.clientCert);
  const api = new XksApi(target, conn);
  try {
    hooks.phase?.('reaching the endpoint');
    try {
      await api.call('first health call', api.path('/health'), { requestMetadata: requestMetadata(target, 'KmsHealthCheck') });
    } catch (err) {
      throw new UnreachableError(`cannot reach ${target.endpoint.origin}: ${describeError(err)}: check the endpoint, the port, --ca and the client certificate`);
    }
    hooks.phase?.('TLS');
    await tlsChecks(target, results);
    hooks.phase?.('conformance');
    await routingChecks(api, results);
    await authChecks(api, results);
    await validationChecks(api, results);
    await cryptoChecks(api, results);
    await everyReplyChecks(api, results);
  } finally {
    await conn.close().catch(() => {});
  }
  hooks.phase?.('latency');
  const summary = await latencyChecks(target, latency, results);
  const retried = api.retried.map(({ label, reply }) => ({ label, status: reply.status }));
  return { endpoint: target.endpoint.origin, uriPath: target.uriPath, startedAt, summary: summarize(results.list), checks: results.list, latency: summary, retried };
}
