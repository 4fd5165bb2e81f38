// The compact binary framing of calls and replies between the cluster and a node process (the hot
// path; start-up and fatal messages stay plain objects on Node's IPC channel). V8-serializing a
// nested object per call cost more CPU than the write itself, and so did the IPC channel's own
// framing and serialization of each Buffer: the frames travel on a plain pipe of their own
// (protocol.ts CALL_PIPE_FD), each behind its u32 length, read back by frame-reader.ts.
// Each call and reply is written at once: holding the frames of an event-loop turn to send them as
// one write saved a write but cost the overlap of the two processes' work, and on a busy 2-core
// machine requests piled up into 429s.
//
// Frame:       u32 length of what follows, then one of
// Call:        u8 KIND_CALL, u32 id, f64 expiresAt, u8 op, op fields
// Reply, ok:   u8 KIND_OK,   u32 id, u8 op, value fields
// Reply, err:  u8 KIND_ERR,  u32 id, str cls, str ckr ('' = none), str message
// Fields are u8, u32 and f64 little-endian; bytes and str are a u32 length and the bytes (UTF-8).
import type { CallReply, CallRequest, NodeCall, OpName, OpResults, WireError } from './protocol.js';
import type { KeyInfo } from './types.js';
import { FRAME_HEADER_BYTES } from './frame-reader.js';

const KIND_CALL = 1;
const KIND_OK = 2;
const KIND_ERR = 3;
// Append only: a code's position is its number on the wire.
const OPS: readonly OpName[] = ['keyInfo', 'encrypt', 'decrypt', 'probe', 'fault', 'stateList', 'statePut', 'stateDelete'];
const OP_CODE = new Map(OPS.map((op, i) => [op, i]));

type Field = number | Buffer | string;
/** A field list: numbers are written as the kind the template says. */
type Kind = 'u8' | 'u32' | 'f64' | 'bytes' | 'str';

class Writer {
  private readonly kinds: Kind[] = [];
  private readonly values: Field[] = [];
  private size = 0;

  u8(v: number): this {
    return this.add('u8', v, 1);
  }
  u32(v: number): this {
    return this.add('u32', v, 4);
  }
  f64(v: number): this {
    return this.add('f64', v, 8);
  }
  bytes(v: Buffer): this {
    return this.add('bytes', v, 4 + v.length);
  }
  str(v: string): this {
    return this.add('str', v, 4 + Buffer.byteLength(v));
  }

  private add(kind: Kind, value: Field, size: number): this {
    this.kinds.push(kind);
    this.values.push(value);
    this.size += size;
    return this;
  }

  /** The frame, length first: ready for one write. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + this.size);
    let at = out.writeUInt32LE(this.size, 0);
    for (let i = 0; i < this.kinds.length; i++) {
      const v = this.values[i]!;
      switch (this.kinds[i]) {
        case 'u8':
          at = out.writeUInt8(v as number, at);
          break;
        case 'u32':
          at = out.writeUInt32LE(v as number, at);
          break;
        case 'f64':
          at = out.writeDoubleLE(v as number, at);
          break;
        case 'bytes':
          at = out.writeUInt32LE((v as Buffer).length, at);
          at += (v as Buffer).copy(out, at);
          break;
        case 'str': {
          const n = out.write(v as string, at + 4, 'utf8');
          out.writeUInt32LE(n, at);
          at += 4 + n;
          break;
        }
      }
    }
    return out;
  }
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  /** A frame is one call or one reply: anything after it means it was misread. */
  end<T>(value: T): T {
    if (this.at !== this.buf.length) throw new RangeError('trailing bytes in frame');
    return value;
  }
  u8(): number {
    return this.buf.readUInt8(this.at++);
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  f64(): number {
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.at + n > this.buf.length) throw new RangeError('truncated frame');
    // A view, not a copy: each chunk read from the pipe is a fresh Buffer nobody else writes to.
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  str(): string {
    return this.bytes().toString('utf8');
  }
}

export function encodeCall(req: CallRequest): Buffer {
  const { call } = req;
  const w = new Writer().u8(KIND_CALL).u32(req.id).f64(req.expiresAt).u8(OP_CODE.get(call.op)!);
  switch (call.op) {
    case 'keyInfo':
      w.str(call.label);
      break;
    case 'encrypt': {
      const i = call.input;
      w.str(i.label).bytes(i.plaintext).bytes(i.hsmAad).u8(i.cdiv ? 1 : 0);
      if (i.cdiv) w.bytes(i.cdiv.aad).bytes(i.cdiv.metadata);
      break;
    }
    case 'decrypt': {
      const i = call.input;
      w.str(i.label).bytes(i.iv).bytes(i.ciphertext).bytes(i.tag).bytes(i.hsmAad);
      break;
    }
    case 'probe':
      break;
    case 'fault':
      w.str(JSON.stringify(call.fault)); // rare: not worth a layout of its own
      break;
    case 'stateList':
      w.str(call.application);
      break;
    case 'statePut':
      w.str(call.application).str(call.label).bytes(call.value);
      break;
    case 'stateDelete':
      w.str(call.application).str(call.label);
      break;
  }
  return w.finish();
}

function readCall(r: Reader, op: OpName): NodeCall {
  switch (op) {
    case 'keyInfo':
      return { op, label: r.str() };
    case 'encrypt': {
      const label = r.str();
      const plaintext = r.bytes();
      const hsmAad = r.bytes();
      return { op, input: r.u8() ? { label, plaintext, hsmAad, cdiv: { aad: r.bytes(), metadata: r.bytes() } } : { label, plaintext, hsmAad } };
    }
    case 'decrypt':
      return { op, input: { label: r.str(), iv: r.bytes(), ciphertext: r.bytes(), tag: r.bytes(), hsmAad: r.bytes() } };
    case 'probe':
      return { op };
    case 'fault':
      return { op, fault: JSON.parse(r.str()) };
    case 'stateList':
      return { op, application: r.str() };
    case 'statePut':
      return { op, application: r.str(), label: r.str(), value: Buffer.from(r.bytes()) };
    case 'stateDelete':
      return { op, application: r.str(), label: r.str() };
  }
}

/** One call from a frame's body (its length already taken off by frame-reader.ts). */
export function decodeCall(body: Buffer): CallRequest {
  const r = new Reader(body);
  if (r.u8() !== KIND_CALL) throw new RangeError('not a call frame');
  const id = r.u32();
  const expiresAt = r.f64();
  const op = OPS[r.u8()];
  if (op === undefined) throw new RangeError('unknown op');
  return r.end({ t: 'req', id, expiresAt, call: readCall(r, op) });
}

export function encodeReply(op: OpName, reply: CallReply): Buffer {
  if (!reply.ok) {
    const e = reply.error;
    return new Writer().u8(KIND_ERR).u32(reply.id).str(e.cls).str(e.ckr ?? '').str(e.message).finish();
  }
  const w = new Writer().u8(KIND_OK).u32(reply.id).u8(OP_CODE.get(op)!);
  switch (op) {
    case 'keyInfo': {
      const v = reply.value as OpResults['keyInfo'];
      w.u8(v ? 1 : 0);
      if (v) w.str(v.keyType).u32(v.valueLen).u8((v.encrypt ? 1 : 0) | (v.decrypt ? 2 : 0)).str(v.objectClass).str(v.keySpec).str(v.otherUsage.join(','));
      break;
    }
    case 'encrypt': {
      const v = reply.value as OpResults['encrypt'];
      w.bytes(v.iv).bytes(v.ciphertext).bytes(v.tag).u8(v.cdiv ? 1 : 0);
      if (v.cdiv) w.bytes(v.cdiv);
      break;
    }
    case 'decrypt':
      w.bytes((reply.value as OpResults['decrypt']).plaintext);
      break;
    case 'probe':
    case 'fault':
    case 'statePut':
      break;
    case 'stateList': {
      const v = reply.value as OpResults['stateList'];
      w.u32(v.length);
      for (const o of v) w.str(o.label).bytes(o.value);
      break;
    }
    case 'stateDelete':
      w.u32(reply.value as number);
      break;
  }
  return w.finish();
}

function readValue(r: Reader, op: OpName): unknown {
  switch (op) {
    case 'keyInfo': {
      if (!r.u8()) return null;
      const keyType = r.str();
      const valueLen = r.u32();
      const flags = r.u8();
      const objectClass = r.str();
      const keySpec = r.str();
      const other = r.str();
      return { objectClass, keyType, valueLen, keySpec, encrypt: (flags & 1) !== 0, decrypt: (flags & 2) !== 0, otherUsage: other ? other.split(',') : [] } satisfies KeyInfo;
    }
    case 'encrypt': {
      const iv = r.bytes();
      const ciphertext = r.bytes();
      const tag = r.bytes();
      return r.u8() ? { iv, ciphertext, tag, cdiv: r.bytes() } : { iv, ciphertext, tag };
    }
    case 'decrypt':
      return { plaintext: r.bytes() };
    case 'probe':
    case 'fault':
    case 'statePut':
      return true;
    case 'stateList':
      return Array.from({ length: r.u32() }, () => ({ label: r.str(), value: Buffer.from(r.bytes()) }));
    case 'stateDelete':
      return r.u32();
  }
}

/** One reply from a frame's body (its length already taken off by frame-reader.ts). */
export function decodeReply(body: Buffer): CallReply {
  const r = new Reader(body);
  const kind = r.u8();
  const id = r.u32();
  if (kind === KIND_ERR) {
    const cls = r.str() as WireError['cls'];
    const ckr = r.str();
    return r.end({ t: 'res', id, ok: false, error: { cls, ckr: ckr === '' ? undefined : ckr, message: r.str() } });
  }
  if (kind !== KIND_OK) throw new RangeError('not a reply frame');
  const op = OPS[r.u8()];
  if (op === undefined) throw new RangeError('unknown op');
  return r.end({ t: 'res', id, ok: true, value: readValue(r, op) });
}
