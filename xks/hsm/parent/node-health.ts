// Health of one node as the cluster sees it, from live traffic and background probes, plus the
// weight used to choose among nodes (after undici's BalancedPool: errors cost weight, successes
// earn it back, so a flaky node gets less traffic before it is taken out).
import type { NodeHealth } from '../types.js';

export const MAX_WEIGHT = 100;
const MIN_WEIGHT = 1;
const SUCCESS_GAIN = 5;
const ERROR_PENALTY = 20;
const TIMEOUT_PENALTY = 40;
/** Consecutive live failures that take a node out of rotation. */
const FAILURES_TO_UNAVAILABLE = 3;
/** Consecutive good probes that bring an UNAVAILABLE node back. */
const PROBES_TO_READMIT = 2;
/** Consecutive live successes that clear DEGRADED without waiting for a probe. */
const SUCCESSES_TO_ACTIVE = 5;

export type LiveOutcome = 'ok' | 'error' | 'timeout';

export class NodeHealthTracker {
  health: NodeHealth = 'UNAVAILABLE';
  weight = MAX_WEIGHT;
  private failures = 0;
  private successes = 0;
  private goodProbes = 0;

  /** The first probe after start-up succeeded. */
  admit(): boolean {
    this.goodProbes = 0;
    this.weight = MAX_WEIGHT;
    return this.set('ACTIVE');
  }

  /** A live call finished; returns true when the health changed. */
  live(outcome: LiveOutcome): boolean {
    if (outcome === 'ok') {
      this.failures = 0;
      this.weight = Math.min(MAX_WEIGHT, this.weight + SUCCESS_GAIN);
      if (this.health === 'DEGRADED' && ++this.successes >= SUCCESSES_TO_ACTIVE) return this.set('ACTIVE');
      return false;
    }
    this.successes = 0;
    this.weight = Math.max(MIN_WEIGHT, this.weight - (outcome === 'timeout' ? TIMEOUT_PENALTY : ERROR_PENALTY));
    // Late answers from a node already out of rotation change nothing.
    if (this.health === 'UNAVAILABLE') return false;
    if (++this.failures >= FAILURES_TO_UNAVAILABLE) return this.takeOut();
    return this.set('DEGRADED');
  }

  probe(ok: boolean): boolean {
    if (!ok) return this.takeOut();
    this.failures = 0;
    if (this.health === 'UNAVAILABLE') {
      if (++this.goodProbes < PROBES_TO_READMIT) return false;
      // Back in rotation at half weight: it earns the rest with live successes.
      this.weight = MAX_WEIGHT / 2;
    }
    return this.set('ACTIVE');
  }

  /** The node's process is gone. */
  down(): boolean {
    return this.takeOut();
  }

  private takeOut(): boolean {
    this.goodProbes = 0;
    this.failures = 0;
    this.successes = 0;
    return this.set('UNAVAILABLE');
  }

  private set(health: NodeHealth): boolean {
    if (health !== 'DEGRADED') this.successes = 0;
    if (this.health === health) return false;
    this.health = health;
    return true;
  }
}
