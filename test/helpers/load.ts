// A bounded open-loop load generator for failover tests and benchmarks: a fixed request rate to
// 127.0.0.1 only, for a fixed duration, with a cap on requests in flight; it stops by itself.
// Each result keeps its start time so a failure window can be cut out afterwards.
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { signXksRequest } from './sign.js';
import type { DemoJson } from './demo.js';

export interface Sample {
  at: number; // ms since the run started
  ms: number;
  status: number;
  errorName?: string;
}

export interface LoadOptions {
  demo: DemoJson;
  rate: number; // requests per second
  durationMs: number;
  maxInFlight?: number;
  /** Client-side limit: a request slower than this counts as a failure (status 0). */
  timeoutMs?: number;
  endpoint?: string;
  /** Called with the elapsed ms on every scheduling tick, to inject faults at chosen times. */
  onTick?: (elapsedMs: number) => void;
  /** Stop sending before durationMs once this returns true (checked every tick). */
  stopWhen?: () => boolean;
  /** Keep-alive connections to reuse (warmed by an earlier run); default: a fresh agent per run. */
  agent?: https.Agent;
  /** What to send (default: one signed Encrypt with CDIV); benchmarks send other requests too. */
  request?: { url: string; headers: Record<string, string>; body: string };
}

export interface LoadReport {
  samples: Sample[];
  sent: number;
  ok: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summarize(samples: Sample[]): LoadReport {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const ok = samples.filter((s) => s.status === 200).length;
  return { samples, sent: samples.length, ok, failed: samples.length - ok, p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms[ms.length - 1] ?? NaN };
}

/** One signed Encrypt request, reusable for five minutes (SigV4's skew window). */
export async function signedEncrypt(demo: DemoJson, endpoint = demo.endpoint) {
  const url = `${endpoint}${demo.uriPath}/keys/${demo.keys.encryptDecrypt}/encrypt`;
  const body = JSON.stringify({
    requestMetadata: { awsPrincipalArn: 'arn:aws:iam::123456789012:user/load', kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/load', kmsOperation: 'Encrypt', kmsRequestId: randomUUID() },
    plaintext: Buffer.alloc(32, 7).toString('base64'),
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: Buffer.from('load').toString('base64'),
    ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
  });
  const headers = await signXksRequest({ url, body, accessKeyId: demo.accessKeyId, secretAccessKey: demo.secretAccessKey, region: demo.region });
  return { url, body, headers };
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const { url, body, headers } = opts.request ?? (await signedEncrypt(opts.demo, opts.endpoint));
  const agent = opts.agent ?? new https.Agent({ keepAlive: true, maxSockets: opts.maxInFlight ?? 64 });
  const ca = readFileSync(opts.demo.caFile);
  const samples: Sample[] = [];
  const t0 = performance.now();
  let inFlight = 0;
  let sent = 0;
  const total = Math.round((opts.rate * opts.durationMs) / 1000);
  const cap = opts.maxInFlight ?? 64;

  const one = () =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      const done = (status: number, errorName?: string) => {
        samples.push({ at: start - t0, ms: performance.now() - start, status, ...(errorName ? { errorName } : {}) });
        inFlight--;
        resolve();
      };
      const req = https.request(url, { method: 'POST', headers, agent, ca, timeout: opts.timeoutMs ?? 2000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let name: string | undefined;
          if (res.statusCode !== 200) {
            try {
              name = (JSON.parse(text) as { errorName?: string }).errorName;
            } catch {
              name = 'non-JSON';
            }
          }
          done(res.statusCode ?? 0, name);
        });
      });
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', (e) => done(0, e.message));
      req.end(body);
    });

  const pending: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - t0;
      opts.onTick?.(elapsed);
      const due = Math.min(total, Math.floor((elapsed / 1000) * opts.rate));
      while (sent < due && inFlight < cap) {
        sent++;
        inFlight++;
        pending.push(one());
      }
      if (sent >= total || elapsed > opts.durationMs + 5000 || opts.stopWhen?.()) return resolve();
      setTimeout(tick, 2);
    };
    tick();
  });
  await Promise.all(pending);
  if (!opts.agent) agent.destroy();
  return summarize(samples);
}
