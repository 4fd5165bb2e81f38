// PINs given as environment variables (pin.env) reach only their own node: the parent takes every
// one of them out of its environment before it starts anything, keeps each node's value for that
// node's process (and its restarts), and puts back only that one variable in the environment of
// that node's process. So no node process, and nothing else the parent starts (haproxy, openssl),
// sees another node's PIN. Files (pin.file) never pass through the parent at all.
import type { HsmNodeOptions } from '../options.js';

export interface PinVariable {
  name: string;
  value: string;
}

/**
 * Remove every node's PIN variable from process.env; return each node's own (absent when unset:
 * the node process then reports the missing variable itself).
 */
export function takePinVariables(nodes: readonly HsmNodeOptions[]): Map<string, PinVariable> {
  const values = new Map<string, string>();
  for (const n of nodes) {
    const name = n.pin.env;
    if (name === undefined) continue;
    const value = process.env[name];
    if (value !== undefined && value !== '') values.set(name, value);
  }
  for (const name of values.keys()) delete process.env[name];
  const out = new Map<string, PinVariable>();
  for (const n of nodes) {
    const name = n.pin.env;
    const value = name === undefined ? undefined : values.get(name);
    if (name !== undefined && value !== undefined) out.set(n.id, { name, value });
  }
  return out;
}
