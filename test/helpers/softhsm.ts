// Temporary SoftHSM2 HSM nodes for tests: one token directory (own SOFTHSM2_CONF) per node, the
// same keys in each, a PIN file with mode 0600, and the `hsm` configuration section that uses them.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Test } from 'tap';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import type { HsmCluster, NodeHealth } from '../../xks/hsm/types.js';
import type { HsmConfig, HsmNodeConfig } from '../../appliance/config/schema.js';
import { provisionToken, writeSoftHsmConf, type TokenKey } from '../../appliance/demo/tokens.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const USER_PIN = '24681357';
export const SO_PIN = '97531864';

/** Labels of the keys every test token holds. */
export const LABELS = {
  health: 'xks-health-test',
  aes: 'k-aes',
  encryptOnly: 'k-encrypt-only',
  decryptOnly: 'k-decrypt-only',
  generic: 'k-generic',
} as const;

/** The hsm section of the test nodes: short deadlines, quick probes. */
const HSM_DEFAULTS: Omit<HsmConfig, 'nodes'> = {
  vendor: 'SoftHSM',
  callTimeoutMs: 100,
  requestBudgetMs: 200,
  probeIntervalMs: 500,
  hangKillAfterMs: 300,
  healthKeyLabel: LABELS.health,
  minNodesAtStart: 1,
  replication: 'proxy',
};

export interface TestHsm {
  dir: string;
  hsm: HsmConfig;
  /** Key material by label: the oracle for Node's own aes-256-gcm. */
  material: Record<string, Buffer>;
  /** Per node: its SOFTHSM2_CONF, for tests that use the module in-process. */
  confs: string[];
  cleanup(): void;
}

export interface TestHsmOptions {
  nodes?: number;
  /** Overrides for every node's configuration. */
  node?: Partial<HsmNodeConfig>;
  hsm?: Partial<Omit<HsmConfig, 'nodes'>>;
}

export async function makeTestHsm(opts: TestHsmOptions = {}): Promise<TestHsm> {
  const dir = mkdtempSync(join(tmpdir(), 'xks-hsm-'));
  try {
    const material: Record<string, Buffer> = {
      [LABELS.health]: randomBytes(32),
      [LABELS.aes]: randomBytes(32),
      [LABELS.encryptOnly]: randomBytes(32),
      [LABELS.decryptOnly]: randomBytes(32),
      [LABELS.generic]: randomBytes(32),
    };
    const keys: TokenKey[] = [
      { label: LABELS.health, material: material[LABELS.health]!, encrypt: true, decrypt: true },
      { label: LABELS.aes, material: material[LABELS.aes]!, encrypt: true, decrypt: true },
      { label: LABELS.encryptOnly, material: material[LABELS.encryptOnly]!, encrypt: true, decrypt: false },
      { label: LABELS.decryptOnly, material: material[LABELS.decryptOnly]!, encrypt: false, decrypt: true },
      { label: LABELS.generic, material: material[LABELS.generic]!, encrypt: true, decrypt: true, keyType: 'GENERIC_SECRET' },
    ];
    const pinFile = join(dir, 'user.pin');
    writeFileSync(pinFile, `${USER_PIN}\n`, { mode: 0o600 });
    const count = opts.nodes ?? 2;
    const nodes: HsmNodeConfig[] = [];
    const confs: string[] = [];
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const nodeDir = join(dir, `node-${i + 1}`);
        mkdirSync(nodeDir, { mode: 0o700 });
        const conf = writeSoftHsmConf(nodeDir);
        const tokenLabel = `xks-test-${i + 1}`;
        await provisionToken({ module: SOFTHSM_MODULE, env: { SOFTHSM2_CONF: conf }, tokenLabel, soPin: SO_PIN, userPin: USER_PIN, keys });
        confs[i] = conf;
        nodes[i] = {
          id: `hsm-${i + 1}`,
          model: 'SoftHSM2',
          module: SOFTHSM_MODULE,
          tokenLabel,
          pin: { file: pinFile },
          ivMode: 'caller',
          sessions: 2,
          callMode: 'sync',
          sessionKeyCopies: 'auto',
          env: { SOFTHSM2_CONF: conf },
          ...opts.node,
        };
      }),
    );
    const hsm: HsmConfig = { ...HSM_DEFAULTS, ...opts.hsm, nodes };
    return { dir, hsm, material, confs, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Polls `check` every 20 ms until it returns true; rejects after `timeoutMs` with `what`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface LoadResult {
  ok: number;
  /** 'errorName (detail)' or message -> count */
  failures: Record<string, number>;
}

/**
 * Keeps `concurrency` encrypts of 256 bytes in flight, each with the configured request budget,
 * until `during` has finished and at least `minOps` ran; bounded by `maxOps` and `maxMs`.
 */
export async function encryptLoad(
  cluster: HsmCluster,
  opts: { concurrency: number; minOps: number; maxOps: number; maxMs: number; budgetMs: number },
  during: () => Promise<void>,
): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failures: {} };
  const plaintext = randomBytes(256);
  const hsmAad = Buffer.from([0, 0, 1, 1]);
  const started = Date.now();
  let done = false;
  let ops = 0;
  const worker = async () => {
    while (ops < opts.maxOps && Date.now() - started < opts.maxMs && (!done || ops < opts.minOps)) {
      ops++;
      try {
        const out = await cluster.encrypt({ label: LABELS.aes, plaintext, hsmAad }, performance.now() + opts.budgetMs);
        if (out.ciphertext.length !== plaintext.length) throw new Error('bad ciphertext length');
        result.ok++;
      } catch (err) {
        const e = err as { errorName?: string; detail?: string; message: string };
        const name = e.errorName ? `${e.errorName} (${e.detail ?? e.message})` : e.message;
        result.failures[name] = (result.failures[name] ?? 0) + 1;
        // Fast rejections must not starve timers (a microtask-only loop would).
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency }, worker);
  try {
    await during();
  } finally {
    done = true;
    await Promise.all(workers);
  }
  return result;
}

/** A started cluster on fresh tokens (two nodes unless `opts` says otherwise), closed and removed
 *  at the end of the test; `th` holds the key material for checks against Node's own crypto. */
export async function startTestCluster(t: Test, opts: TestHsmOptions = { nodes: 2 }): Promise<{ th: TestHsm; cluster: HsmCluster }> {
  const th = await makeTestHsm(opts);
  const cluster = createHsmCluster(th.hsm);
  t.teardown(async () => {
    await cluster.close();
    th.cleanup();
  });
  await cluster.start();
  return { th, cluster };
}

/** A started two-node cluster on fresh tokens, closed and removed at the end of the test. */
export async function startedCluster(t: Test): Promise<HsmCluster> {
  return (await startTestCluster(t)).cluster;
}

/** Every health state node `id` went through, from onChange. */
export function healthHistory(cluster: HsmCluster, id: string): NodeHealth[] {
  const seen: NodeHealth[] = [];
  cluster.onChange((nodes) => {
    const health = nodes.find((n) => n.id === id)!.health;
    if (seen.at(-1) !== health) seen.push(health);
  });
  return seen;
}

/**
 * Nodes with keys of their own (for split, missing and odd keys): `perNode[i]` is what node i+1
 * holds besides the health key (same material everywhere). `tokens[i] === false` leaves node i+1's
 * token uninitialized (a node that cannot start until `initToken(i)` makes it).
 */
export async function makeKeyedHsm(
  perNode: TokenKey[][],
  opts: { hsm?: Partial<Omit<HsmConfig, 'nodes'>>; tokens?: boolean[] } = {},
): Promise<TestHsm & { initToken(i: number): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'xks-keys-'));
  const health: TokenKey = { label: LABELS.health, material: randomBytes(32), encrypt: true, decrypt: true };
  const pinFile = join(dir, 'user.pin');
  writeFileSync(pinFile, `${USER_PIN}\n`, { mode: 0o600 });
  const confs: string[] = [];
  const provision = (i: number) =>
    provisionToken({ module: SOFTHSM_MODULE, env: { SOFTHSM2_CONF: confs[i]! }, tokenLabel: `xks-test-${i + 1}`, soPin: SO_PIN, userPin: USER_PIN, keys: [health, ...perNode[i]!] });
  const nodes: HsmNodeConfig[] = perNode.map((_, i) => {
    const nodeDir = join(dir, `node-${i + 1}`);
    mkdirSync(nodeDir, { mode: 0o700 });
    confs[i] = writeSoftHsmConf(nodeDir);
    return {
      id: `hsm-${i + 1}`,
      model: 'SoftHSM2',
      module: SOFTHSM_MODULE,
      tokenLabel: `xks-test-${i + 1}`,
      pin: { file: pinFile },
      ivMode: 'caller',
      sessions: 2,
      callMode: 'sync',
      sessionKeyCopies: 'auto',
      env: { SOFTHSM2_CONF: confs[i]! },
    };
  });
  try {
    await Promise.all(perNode.map((_, i) => (opts.tokens?.[i] === false ? undefined : provision(i))));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const hsm: HsmConfig = { ...HSM_DEFAULTS, probeIntervalMs: 300, ...opts.hsm, nodes };
  const material = Object.fromEntries(perNode.flat().map((k) => [k.label, k.material]));
  return { dir, hsm, material, confs, initToken: provision, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
