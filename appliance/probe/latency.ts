// Latency against KMS's budget (P1): KMS gives up on any call after 250 ms, counting TCP, the TLS
// handshake and the HTTP round trip. A cold call pays all three; warm calls reuse a keep-alive
// connection. The optional fixed-rate run (P3) shows throughput, p99 and errors under load.
import { Connection, requestMetadata, XksApi, type Reply } from './client.js';
import { describeReply, fail, pass, type Results } from './results.js';
import type { ProbeTarget } from './target.js';

export interface LatencyOptions {
  /** KMS's deadline, 250 ms (P1); a larger one only for tests on a busy machine. */
  budgetMs: number;
  /** Warm calls per API. */
  samples: number;
  /** Fixed-rate run: requests per second and seconds; off when rate is 0. */
  rate: number;
  durationS: number;
}

export interface LatencySummary {
  cold?: { tcpMs: number; tlsMs: number; requestMs: number; totalMs: number };
  warm: Record<string, { p50: number; p99: number; max: number; n: number }>;
  load?: { rate: number; durationS: number; sent: number; ok: number; errors: number; throughput: number; p50: number; p99: number };
}

const round = (ms: number) => Math.round(ms * 10) / 10;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

type Call = (api: XksApi) => Promise<Reply>;

/** One request per API, on the endpoint's URI path. */
function apiCalls(target: ProbeTarget, ciphertext: Record<string, unknown> | undefined): Record<string, Call> {
  const key = target.keys.encryptDecrypt;
  const plaintext = Buffer.from('xks probe latency').toString('base64');
  const calls: Record<string, Call> = {
    health: (api) => api.call('latency health', api.path('/health'), { requestMetadata: requestMetadata(target, 'KmsHealthCheck') }),
    metadata: (api) => api.call('latency metadata', api.path(`/keys/${key}/metadata`), { requestMetadata: requestMetadata(target, 'DescribeKey') }),
    encrypt: (api) => api.call('latency encrypt', api.path(`/keys/${key}/encrypt`), { requestMetadata: requestMetadata(target, 'Encrypt'), plaintext, encryptionAlgorithm: 'AES_GCM' }),
  };
  if (ciphertext) calls.decrypt = (api) => api.call('latency decrypt', api.path(`/keys/${key}/decrypt`), { requestMetadata: requestMetadata(target, 'Decrypt'), ...ciphertext, encryptionAlgorithm: 'AES_GCM' });
  return calls;
}

export async function latencyChecks(target: ProbeTarget, opts: LatencyOptions, results: Results): Promise<LatencySummary> {
  const summary: LatencySummary = { warm: {} };
  const budget = opts.budgetMs;

  await results.check('latency', 'P1', `cold call (TCP + TLS + request) within ${budget} ms`, async () => {
    const conn = new Connection(target, target.clientCert, { keepAlive: false });
    try {
      const api = new XksApi(target, conn);
      const r = await apiCalls(target, undefined).health!(api);
      if (r.status !== 200) return fail(`health: got ${describeReply(r)}, want 200`);
      const c = conn.connects[0] ?? { tcpMs: 0, tlsMs: 0 };
      // r.ms runs from the request's start, so it includes connecting.
      const cold = { tcpMs: round(c.tcpMs), tlsMs: round(c.tlsMs), requestMs: round(r.ms - c.tcpMs - c.tlsMs), totalMs: round(r.ms) };
      summary.cold = cold;
      const text = `${cold.totalMs} ms = TCP ${cold.tcpMs} + TLS ${cold.tlsMs} + request ${cold.requestMs}`;
      return cold.totalMs <= budget ? pass(text) : fail(`${text}: over KMS's ${budget} ms`);
    } finally {
      await conn.close();
    }
  });

  const conn = new Connection(target, target.clientCert);
  try {
    const api = new XksApi(target, conn);
    const enc = await apiCalls(target, undefined).encrypt!(api);
    const ciphertext = enc.status === 200 ? (enc.json as Record<string, unknown>) : undefined;
    for (const [name, call] of Object.entries(apiCalls(target, ciphertext))) {
      await results.check('latency', 'P1', `warm ${name}: p99 within ${budget} ms`, async () => {
        const times: number[] = [];
        for (let i = 0; i < opts.samples; i++) {
          const r = await call(api);
          if (r.status !== 200) return fail(`${name}: got ${describeReply(r)}, want 200`);
          times.push(r.ms);
        }
        times.sort((a, b) => a - b);
        const w = { p50: round(percentile(times, 50)), p99: round(percentile(times, 99)), max: round(times.at(-1)!), n: times.length };
        summary.warm[name] = w;
        const text = `p50 ${w.p50} ms, p99 ${w.p99} ms over ${w.n} calls`;
        return w.p99 <= budget ? pass(text) : fail(`${text}: p99 over KMS's ${budget} ms`);
      });
    }
  } finally {
    await conn.close();
  }

  if (opts.rate > 0) {
    await results.check('latency', 'P3', `${opts.rate} req/s for ${opts.durationS} s: no errors, p99 within ${budget} ms`, async () => {
      const load = await fixedRate(target, opts);
      summary.load = load;
      const text = `${load.sent} sent, ${load.throughput} req/s done, p50 ${load.p50} ms, p99 ${load.p99} ms, ${load.errors} errors`;
      return load.errors === 0 && load.p99 <= budget && load.sent > 0 ? pass(text) : fail(text);
    });
  }
  return summary;
}

/** Open loop: requests start on schedule whether or not earlier ones have finished. */
async function fixedRate(target: ProbeTarget, opts: LatencyOptions): Promise<NonNullable<LatencySummary['load']>> {
  const conns = Array.from({ length: Math.min(16, Math.max(1, Math.ceil(opts.rate / 100))) }, () => new Connection(target, target.clientCert));
  const apis = conns.map((c) => new XksApi(target, c));
  const encrypt = apiCalls(target, undefined).encrypt!;
  const times: number[] = [];
  let sent = 0;
  let errors = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const end = start + opts.durationS * 1000;
  try {
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - start) / 1000) * opts.rate);
      while (sent < due) {
        const api = apis[sent % apis.length]!;
        sent++;
        pending.push(
          encrypt(api).then(
            (r) => {
              api.replies.length = 0; // a long run must not keep every reply
              if (r.status === 200) times.push(r.ms);
              else errors++;
            },
            () => void errors++,
          ),
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
  const elapsedS = (performance.now() - start) / 1000;
  times.sort((a, b) => a - b);
  return { rate: opts.rate, durationS: opts.durationS, sent, ok: times.length, errors, throughput: Math.round(times.length / elapsedS), p50: round(percentile(times, 50)), p99: round(percentile(times, 99)) };
}
