// Reply rules: every reply is spec JSON (X3): Content-Type application/json, a JSON body, and
// either an errorName of the spec's catalog with its status (any name for 405, which the spec
// leaves unnamed) or a 200 with one API's answer.
import { SPEC_ERRORS } from '../oracle.js';
import type { RawResponse } from '../raw-http.js';

export const OK_SHAPES: Readonly<Record<string, readonly string[]>> = {
  health: ['xksProxyFleetSize', 'xksProxyVendor', 'xksProxyModel', 'ekmVendor', 'ekmFleetDetails'],
  metadata: ['keySpec', 'keyUsage', 'keyStatus'],
  encrypt: ['ciphertext', 'ciphertextMetadata', 'initializationVector', 'authenticationTag'],
  decrypt: ['plaintext'],
  healthz: ['status'],
};

/** The errorName (or `200 <api>`) of a conforming reply, or a problem description. */
export function classifyReply(res: RawResponse, headRequest: boolean): { label: string; problem?: string } {
  if (res.status === 100) return { label: '100 Continue' };
  const type = res.headers['content-type'];
  const base = `${res.status}`;
  if (!type || !/^application\/json(\s*;|$)/i.test(type)) {
    return { label: `${base} non-JSON`, problem: `content-type ${JSON.stringify(type)}: ${res.statusLine} ${res.body.toString('latin1').slice(0, 80)}` };
  }
  if (headRequest && res.body.length === 0) return { label: `${base} HEAD` };
  let json: unknown;
  try {
    json = JSON.parse(res.body.toString('utf8'));
  } catch {
    return { label: `${base} bad-JSON`, problem: `body is not JSON: ${res.body.toString('latin1').slice(0, 80)}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { label: `${base} bad-JSON`, problem: 'body is not a JSON object' };
  const o = json as Record<string, unknown>;
  if (res.status === 200) {
    const shape = Object.keys(OK_SHAPES).find((k) => OK_SHAPES[k]!.every((f) => f in o));
    return shape ? { label: `200 ${shape}` } : { label: '200 unknown', problem: `200 body of no API: ${JSON.stringify(o).slice(0, 120)}` };
  }
  // The load balancer's check answers 503 with its own body while this instance cannot serve
  // (a busy machine can make HSM probes late): not an XKS error, so it has no errorName.
  if (res.status === 503 && typeof o['status'] === 'string' && !('errorName' in o)) return { label: '503 healthz' };
  const name = String(o['errorName']);
  if (res.status !== 405 && SPEC_ERRORS[name] !== res.status) return { label: `${base} ${name}`, problem: `errorName ${name} is not the spec's name for ${res.status}` };
  const msg = o['errorMessage'];
  if (msg !== undefined && (typeof msg !== 'string' || msg.length >= 512 || !/^[\x20-\x7e]*$/.test(msg))) {
    return { label: `${base} ${name}`, problem: `errorMessage is not < 512 printable ASCII: ${JSON.stringify(msg).slice(0, 80)}` };
  }
  return { label: `${base} ${name}` };
}
