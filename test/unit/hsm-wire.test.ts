// The binary framing between the cluster and its node processes: every call and reply survives a
// round trip exactly, each frame is its length then its body, and garbage is refused.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { decodeCall, decodeReply, encodeCall, encodeReply } from '../../xks/hsm/wire.js';

/** The body of one frame, after checking its length prefix. */
function body(frame: Buffer): Buffer {
  if (frame.readUInt32LE(0) !== frame.length - 4) throw new Error('length prefix does not match the frame');
  return frame.subarray(4);
}
import type { CallReply, CallRequest, NodeCall } from '../../xks/hsm/protocol.js';

const calls: NodeCall[] = [
  { op: 'keyInfo', label: 'k-aes' },
  { op: 'encrypt', input: { label: 'clé-ü', plaintext: randomBytes(4300), hsmAad: randomBytes(40) } },
  { op: 'encrypt', input: { label: 'k', plaintext: Buffer.alloc(0), hsmAad: randomBytes(4), cdiv: { aad: Buffer.alloc(0), metadata: Buffer.from([1, 0]) } } },
  { op: 'decrypt', input: { label: 'k', iv: randomBytes(12), ciphertext: randomBytes(33), tag: randomBytes(16), hsmAad: randomBytes(9) } },
  { op: 'probe' },
  { op: 'fault', fault: { kind: 'fail', ckr: 'CKR_DEVICE_ERROR' } },
];

t.test('calls round-trip', async (t) => {
  const reqs: CallRequest[] = calls.map((call, i) => ({ t: 'req', id: 4_000_000_000 + i, expiresAt: Date.now() + 1234.5, call }));
  for (const req of reqs) t.same(decodeCall(body(encodeCall(req))), req, req.call.op);
});

t.test('replies round-trip, values and errors', async (t) => {
  const replies: Array<[NodeCall['op'], CallReply]> = [
    ['keyInfo', { t: 'res', id: 1, ok: true, value: { objectClass: 'SECRET_KEY', keyType: 'AES', valueLen: 32, keySpec: 'AES_256', encrypt: true, decrypt: false, otherUsage: ['WRAP', 'UNWRAP'] } }],
    ['keyInfo', { t: 'res', id: 10, ok: true, value: { objectClass: 'PRIVATE_KEY', keyType: 'RSA', valueLen: 0, keySpec: 'RSA_2048', encrypt: false, decrypt: true, otherUsage: [] } }],
    ['keyInfo', { t: 'res', id: 2, ok: true, value: null }],
    ['encrypt', { t: 'res', id: 3, ok: true, value: { iv: randomBytes(12), ciphertext: randomBytes(100), tag: randomBytes(16) } }],
    ['encrypt', { t: 'res', id: 4, ok: true, value: { iv: randomBytes(12), ciphertext: randomBytes(1), tag: randomBytes(16), cdiv: randomBytes(32) } }],
    ['decrypt', { t: 'res', id: 5, ok: true, value: { plaintext: randomBytes(7) } }],
    ['probe', { t: 'res', id: 6, ok: true, value: true }],
    ['fault', { t: 'res', id: 7, ok: true, value: true }],
    ['decrypt', { t: 'res', id: 8, ok: false, error: { cls: 'invalid-ciphertext', ckr: 'CKR_ENCRYPTED_DATA_INVALID', message: 'C_Decrypt: CKR_ENCRYPTED_DATA_INVALID' } }],
    ['encrypt', { t: 'res', id: 9, ok: false, error: { cls: 'key-missing', ckr: undefined, message: 'no secret key labelled "x"' } }],
  ];
  for (const [op, reply] of replies) t.same(decodeReply(body(encodeReply(op, reply))), reply, `${op} ${reply.ok ? 'ok' : 'error'}`);
});

t.test('truncated or foreign messages are refused, not misread', async (t) => {
  const call = body(encodeCall({ t: 'req', id: 1, expiresAt: 0, call: calls[1]! }));
  t.throws(() => decodeCall(call.subarray(0, call.length - 10)), RangeError, 'truncated call');
  t.throws(() => decodeCall(Buffer.concat([call, Buffer.from([0])])), RangeError, 'a call with bytes after it');
  t.throws(() => decodeReply(call), RangeError, 'a call is not a reply');
  t.throws(() => decodeCall(body(encodeReply('probe', { t: 'res', id: 1, ok: true, value: true }))), RangeError, 'a reply is not a call');
});
