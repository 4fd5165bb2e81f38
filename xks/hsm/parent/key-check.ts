// One truth on every node: for one label, what each node holds (present, class, type, length,
// CKA_ENCRYPT/DECRYPT) and whether their material is the same. The material check is a ciphertext
// made on one node that must decrypt on the others: sound in both ivModes (the IV travels with the
// ciphertext) and on every module, where a key check value (CKA_CHECK_VALUE) is optional in PKCS#11
// and not computed the same way everywhere. Nodes are grouped; the group holding a strict majority
// of the nodes that hold the key is served, the rest never are. No majority is a split.
import { randomBytes } from 'node:crypto';
import type { NodeCall, OpName, OpResults } from '../protocol.js';
import type { KeyInfo, KeyReport, KeyState, NodeKeyView } from '../types.js';

export interface CheckableNode {
  id: string;
  call<K extends OpName>(call: Extract<NodeCall, { op: K }>, timeoutMs: number): Promise<OpResults[K]>;
}

const CHECK_AAD = Buffer.from('xks-key-check');

export async function checkKey(label: string, nodes: readonly CheckableNode[], timeoutMs: number): Promise<KeyReport> {
  const views = new Map<string, NodeKeyView>();
  const infos = await Promise.all(
    nodes.map((n) =>
      n.call({ op: 'keyInfo', label }, timeoutMs).then(
        (info) => ({ node: n, info, error: undefined }),
        (err: unknown) => ({ node: n, info: null, error: err instanceof Error ? err.message : String(err) }),
      ),
    ),
  );
  // Nodes holding an object, grouped by what the object is.
  const kinds = new Map<string, CheckableNode[]>();
  const infoOf = new Map<string, KeyInfo>();
  for (const { node, info, error } of infos) {
    if (error !== undefined) views.set(node.id, { node: node.id, verdict: 'unknown', detail: `could not ask the node (${error})` });
    else if (!info) views.set(node.id, { node: node.id, verdict: 'missing', detail: `no key labelled "${label}"` });
    else {
      infoOf.set(node.id, info);
      const kind = kindOf(info);
      kinds.set(kind, [...(kinds.get(kind) ?? []), node]);
    }
  }
  // Each kind split further by material where the material can be compared.
  const groups: CheckableNode[][] = [];
  let materialChecked = false;
  for (const members of kinds.values()) {
    const info = infoOf.get(members[0]!.id)!;
    if (info.objectClass === 'SECRET_KEY' && info.keyType === 'AES' && info.encrypt && info.decrypt) {
      materialChecked = true;
      groups.push(...(await byMaterial(label, members, timeoutMs, views)));
    } else {
      groups.push(members);
    }
  }
  const holders = groups.reduce((n, g) => n + g.length, 0);
  const largest = groups.reduce<CheckableNode[]>((a, g) => (g.length > a.length ? g : a), []);
  const majority = largest.length * 2 > holders ? largest : undefined;
  if (majority) {
    const ref = infoOf.get(majority[0]!.id)!;
    for (const g of groups) {
      for (const n of g) {
        const info = infoOf.get(n.id)!;
        if (g === majority) views.set(n.id, { node: n.id, verdict: 'ok', info });
        else if (kindOf(info) === kindOf(ref)) views.set(n.id, { node: n.id, verdict: 'other-material', info, detail: `holds other key material under "${label}"` });
        else views.set(n.id, { node: n.id, verdict: 'other-kind', info, detail: `holds ${describe(info)} under "${label}", the others ${describe(ref)}` });
      }
    }
  } else {
    for (const g of groups) for (const n of g) views.set(n.id, { node: n.id, verdict: 'other-material', info: infoOf.get(n.id), detail: `no majority holds the same key under "${label}"` });
  }
  const list = nodes.map((n) => views.get(n.id)!);
  const state: KeyState =
    holders === 0 ? (list.some((v) => v.verdict === 'missing') ? 'absent' : 'unchecked') : !majority ? 'split' : list.every((v) => v.verdict === 'ok' || v.verdict === 'unknown') ? 'consistent' : 'degraded';
  return { label, state, nodes: list, materialChecked, message: messageFor(label, state, list, groups) };
}

/** Splits nodes holding the same kind of AES key into groups of the same material. */
async function byMaterial(label: string, members: CheckableNode[], timeoutMs: number, views: Map<string, NodeKeyView>): Promise<CheckableNode[][]> {
  const groups: CheckableNode[][] = [];
  let rest = members;
  while (rest.length > 0) {
    const [ref, ...others] = rest as [CheckableNode, ...CheckableNode[]];
    const plaintext = randomBytes(32);
    let sample: OpResults['encrypt'];
    try {
      sample = await ref.call({ op: 'encrypt', input: { label, plaintext, hsmAad: CHECK_AAD } }, timeoutMs);
    } catch (err) {
      views.set(ref.id, { node: ref.id, verdict: 'unknown', detail: `the check encrypt failed (${err instanceof Error ? err.message : String(err)})` });
      rest = others;
      continue;
    }
    const results = await Promise.all(
      others.map((n) =>
        n.call({ op: 'decrypt', input: { label, iv: sample.iv, ciphertext: sample.ciphertext, tag: sample.tag, hsmAad: CHECK_AAD } }, timeoutMs).then(
          (r) => (r.plaintext.equals(plaintext) ? 'same' : 'other'),
          (err: unknown) => ((err as { kind?: string }).kind === 'invalid-ciphertext' ? 'other' : `error: ${err instanceof Error ? err.message : String(err)}`),
        ),
      ),
    );
    const group = [ref];
    const next: CheckableNode[] = [];
    others.forEach((n, i) => {
      const r = results[i]!;
      if (r === 'same') group.push(n);
      else if (r === 'other') next.push(n);
      else views.set(n.id, { node: n.id, verdict: 'unknown', detail: `the check decrypt failed (${r.slice(7)})` });
    });
    groups.push(group);
    rest = next;
  }
  return groups;
}

function kindOf(info: KeyInfo): string {
  return `${info.objectClass}/${info.keySpec}/${info.encrypt ? 'E' : '-'}${info.decrypt ? 'D' : '-'}`;
}

export function describe(info: KeyInfo): string {
  const usage = [info.encrypt && 'encrypt', info.decrypt && 'decrypt'].filter(Boolean).join('+') || 'no encrypt/decrypt';
  return `${info.keySpec} ${info.objectClass} (${usage})`;
}

function messageFor(label: string, state: KeyState, views: NodeKeyView[], groups: CheckableNode[][]): string {
  const ids = (vs: NodeKeyView[]) => vs.map((v) => v.node).join(', ');
  switch (state) {
    case 'consistent':
      return '';
    case 'unchecked':
      return `key "${label}": no node could be asked`;
    case 'absent':
      return `key "${label}" is on no HSM node (${ids(views)}); create it (xks keys create) or remove it from the configuration`;
    case 'split':
      return `key "${label}" differs between HSM nodes with no majority: ${groups.map((g) => g.map((n) => n.id).join('+')).join(' | ')} hold different keys; put the same key on every node (xks keys verify)`;
    case 'degraded':
      return `key "${label}" is not served by ${views
        .filter((v) => v.verdict !== 'ok' && v.verdict !== 'unknown')
        .map((v) => `${v.node} (${v.detail})`)
        .join(', ')}; the others serve it`;
  }
}
