// The request as it is being built (a draft the mutators change, layer by layer).
import type { Credential, Api } from './target.js';

export type Layer = 'json' | 'body' | 'line' | 'sign' | 'auth' | 'tamper' | 'header' | 'framing' | 'raw';
export const LAYER_ORDER: readonly Layer[] = ['json', 'body', 'line', 'sign', 'auth', 'tamper', 'header', 'framing', 'raw'];

export interface Draft {
  api: Api;
  /** The body as a value (layer json), or its text when a mutation needs text JSON cannot express. */
  json: Record<string, unknown>;
  jsonText: string | undefined;
  body: Buffer;
  method: string;
  target: string;
  version: string;
  headers: Array<[string, string]>;
  /** Bytes after the head when they are not simply `body` (chunked, cut, extended). */
  payload: Buffer | undefined;
  bytes: Buffer | undefined;
  /** Signing choices (layer sign). */
  sign: { with: Credential | null; region: string; date: Date; extraSigned: string[] };
  /**
   * The bytes may not be exactly one well-framed request: the client half-closes after writing,
   * so the server sees the end and must answer or close, and the connection is not reused.
   */
  last: boolean;
  /**
   * The request cannot authenticate: it was signed with a wrong secret, scope or date, its
   * signature or Authorization was broken, or its bytes were changed after signing. Set only
   * where that is certain, so a 200 (or any answer only an authenticated request can get) for
   * it is a SigV4 bypass, not a difference of reading.
   */
  authBroken: boolean;
}

export interface FuzzCase {
  index: number;
  bytes: Buffer;
  last: boolean;
  /** See Draft.authBroken: no answer past authentication is allowed. */
  authBroken: boolean;
  /** The request line's method as written: HEAD replies carry no body. */
  method: string;
  api: Api;
  mutators: string[];
  /** A Decrypt case: the only plaintext a 200 may carry (GCM: no mutation can yield another). */
  plaintext?: string;
}


export const headerIndex = (d: Draft, name: string) => d.headers.findIndex(([n]) => n.toLowerCase() === name);
export function setHeader(d: Draft, name: string, value: string): void {
  const i = headerIndex(d, name.toLowerCase());
  if (i < 0) d.headers.push([name, value]);
  else d.headers[i] = [d.headers[i]![0], value];
}
export const removeHeader = (d: Draft, name: string) => (d.headers = d.headers.filter(([n]) => n.toLowerCase() !== name));
export const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding']);
