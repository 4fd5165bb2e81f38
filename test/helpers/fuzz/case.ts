// The case builder: a valid signed request of one API, mutated layer by layer in wire order.
import { serialize } from '../raw-http.js';
import { FastSigner } from '../sign.js';
import type { Draft, Layer } from './draft.js';
import { MUTATOR_WEIGHTS } from './mutators/index.js';
import { type Mutator, textOf } from './mutators/util.js';
import type { FuzzCase } from './draft.js';
import { Rng, caseSeed } from '../rng.js';
import { APIS, type FuzzTarget } from './target.js';
import { apiPath, baseBody } from './bodies.js';

function methodOf(bytes: Buffer): string {
  let at = 0;
  while (bytes[at] === 0x0d || bytes[at] === 0x0a) at++;
  const space = bytes.indexOf(0x20, at);
  return bytes.subarray(at, space < 0 ? at : space).toString('latin1');
}

/** How many mutators a case gets: 0 (a valid request, so 200s keep being checked) to 4. */
export const MUTATION_COUNT: ReadonlyArray<readonly [number, number]> = [[0, 8], [1, 60], [2, 22], [3, 7], [4, 3]];

export function buildCase(t: FuzzTarget, seed: number, index: number, signer: FastSigner): FuzzCase {
  const r = new Rng(caseSeed(seed, index));
  const api = r.pick(APIS);
  const sealed = r.pick(t.sealed);
  const d: Draft = {
    api,
    json: baseBody(api, r, t, sealed),
    jsonText: undefined,
    body: Buffer.alloc(0),
    method: 'POST',
    target: apiPath(api, r, t, api === 'decrypt' ? sealed.keyId : t.keyIds[0]!),
    version: 'HTTP/1.1',
    headers: [['Host', t.host], ['Content-Type', 'application/json']],
    payload: undefined,
    bytes: undefined,
    sign: { with: t.primary, region: t.region, date: t.date, extraSigned: [] },
    last: false,
    authBroken: false,
  };
  const chosen: Mutator[] = [];
  for (let n = r.weighted(MUTATION_COUNT); n > 0; n--) chosen.push(r.weighted(MUTATOR_WEIGHTS));
  const run = (layer: Layer) => {
    for (const m of chosen) if (m.layer === layer) m.apply(d, r, t);
  };

  run('json');
  d.body = Buffer.from(textOf(d), 'utf8');
  run('body');
  run('line');
  run('sign');
  // Whether the signing choices can authenticate at all: a known access key id with its own secret,
  // the store's region and the run's date (S2, S5). Judged on the final choices, since a later
  // mutator of the layer may undo an earlier one.
  const secrets = new Map([t.primary, t.second].map((c) => [c.accessKeyId, c.secretAccessKey]));
  const s = d.sign;
  // A date 6 minutes off may come back inside the 5 minutes of skew while a long run goes on (the
  // run's date is fixed at its start): only shifts of an hour or more certainly fail.
  const skewMs = Math.abs(s.date.getTime() - t.date.getTime());
  if (!s.with || secrets.get(s.with.accessKeyId) !== s.with.secretAccessKey || s.region !== t.region || skewMs >= 3_600_000) d.authBroken = true;
  if (d.sign.with) {
    const path = d.target.split('?', 1)[0]!;
    const signed = signer.sign({ method: d.method, path, headers: d.headers, body: d.body }, d.sign.with, d.sign.region, d.sign.date, d.sign.extraSigned);
    d.headers.push(['X-Amz-Date', signed['x-amz-date']], ['Authorization', signed.authorization]);
  }
  d.headers.push(['Content-Length', String(d.body.length)]);
  // An auth mutation may be undone by the next (a signature cut by one digit, then one added):
  // only a final Authorization or X-Amz-Date other than the signed ones keeps the mark.
  const authHeaders = () => JSON.stringify(d.headers.filter(([n]) => /^(authorization|x-amz-date)$/i.test(n)));
  const [signedAuth, brokenBefore] = [authHeaders(), d.authBroken];
  run('auth');
  if (authHeaders() === signedAuth) d.authBroken = brokenBefore;
  const signed = { target: d.target, body: d.body };
  run('tamper');
  // Likewise: two tamperings may cancel out, so the bytes are compared with what was signed.
  if (d.target !== signed.target || !d.body.equals(signed.body)) d.authBroken = true;
  run('header');
  run('framing');
  d.bytes = serialize(d);
  run('raw');
  return {
    index,
    bytes: d.bytes,
    last: d.last,
    authBroken: d.authBroken,
    // As the server reads it: HTTP/1.1 parsers skip empty lines before the request line.
    method: methodOf(d.bytes),
    api,
    mutators: chosen.map((m) => m.name),
    ...(api === 'decrypt' ? { plaintext: sealed.plaintext } : {}),
  };
}
