// Every mutator, layer by layer in wire order, with its weight for drawing a case's mutations.
import { LAYER_ORDER } from '../draft.js';
import { AUTH_MUTATORS } from './auth.js';
import { BODY_MUTATORS } from './body.js';
import { FRAMING_MUTATORS } from './framing.js';
import { HEADER_MUTATORS } from './header.js';
import { JSON_MUTATORS } from './json.js';
import { LINE_MUTATORS } from './line.js';
import { RAW_MUTATORS } from './raw.js';
import { SIGN_MUTATORS } from './sign.js';
import { TAMPER_MUTATORS } from './tamper.js';
import type { Mutator } from './util.js';

export const MUTATORS: readonly Mutator[] = [...JSON_MUTATORS, ...BODY_MUTATORS, ...LINE_MUTATORS, ...SIGN_MUTATORS, ...AUTH_MUTATORS, ...TAMPER_MUTATORS, ...HEADER_MUTATORS, ...FRAMING_MUTATORS, ...RAW_MUTATORS];

export const MUTATOR_WEIGHTS = MUTATORS.map((m) => [m, m.weight] as const);

/** Mutator names by layer, in wire order, for reports. */
export function mutatorsByLayer(): Record<string, string[]> {
  return Object.fromEntries(LAYER_ORDER.map((l) => [l, MUTATORS.filter((m) => m.layer === l).map((m) => m.name)]));
}

