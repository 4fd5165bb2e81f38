// Entry of one HSM node process, started by parent/spawn-node.ts with Node's IPC channel
// (`serialization: 'advanced'`) for init, ready and fatal, and a plain pipe on descriptor
// CALL_PIPE_FD for the calls and replies in wire.ts frames: the IPC channel's per-message
// serialization and parsing cost about as much CPU as the call. It holds the node's PKCS#11
// module and sessions, so a vendor library that hangs or crashes takes down this process only. It
// reads its own PIN; a configuration it cannot work with is reported to the parent as one line
// naming the node and the fix, and the process exits.
import { Socket } from 'node:net';
import { FrameReader } from '../frame-reader.js';
import { KeyMissingError, NodeService, FatalInitError } from './node-service.js';
import { Pkcs11CallError } from './pkcs11.js';
import { CALL_PIPE_FD, NODE_NOTICE, type CallReply, type CallRequest, type ChildMessage, type InitMessage, type WireError } from '../protocol.js';
import { decodeCall, encodeReply } from '../wire.js';
import { ExpiredError } from './session-pool.js';

let service: NodeService | undefined;
let nodeId = 'unknown';

const calls = new Socket({ fd: CALL_PIPE_FD, readable: true, writable: true });

function send(msg: ChildMessage, then?: () => void): void {
  if (!process.connected) return;
  process.send!(msg, undefined, undefined, () => then?.());
}

async function init(msg: InitMessage): Promise<void> {
  nodeId = msg.node.id;
  try {
    service = await NodeService.open(msg.node, msg.healthKeyLabel);
    send({ t: 'ready' });
  } catch (err) {
    const reason = err instanceof FatalInitError ? err.message : `start-up failed (${err instanceof Error ? err.message : String(err)})`;
    // One line, whatever the module put in its message.
    const line = `HSM node ${nodeId}: ${reason}`.replace(/\s+/g, ' ');
    send({ t: 'fatal', message: line, kind: err instanceof FatalInitError ? err.kind : 'config' }, () => process.exit(1));
  }
}

async function handle(req: CallRequest): Promise<void> {
  // The parent stopped waiting (a backlog after a freeze, say): skip the HSM work.
  if (!service || Date.now() > req.expiresAt) return;
  let reply: CallReply;
  try {
    const value = await service.run(req.call, req.expiresAt);
    reply = { t: 'res', id: req.id, ok: true, value };
  } catch (err) {
    if (err instanceof ExpiredError) return;
    reply = { t: 'res', id: req.id, ok: false, error: toWire(err) };
  }
  // One write per reply, at once. Freezing blocks the event loop the way SIGSTOP would: the
  // write's callback runs once the reply is in the kernel's hands, acknowledged first.
  if (service.currentFault.kind === 'freeze') calls.write(encodeReply(req.call.op, reply), freeze);
  else calls.write(encodeReply(req.call.op, reply));
}

function toWire(err: unknown): WireError {
  if (err instanceof Pkcs11CallError) return { cls: err.cls, ckr: err.ckr, message: err.message };
  if (err instanceof KeyMissingError) return { cls: 'key-missing', message: err.message };
  return { cls: 'internal', message: err instanceof Error ? err.message : String(err) };
}

/** Blocks the event loop until killed; leaves if the parent dies, which it could not notice otherwise. */
function freeze(): never {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const parent = process.ppid;
  while (process.ppid === parent) Atomics.wait(cell, 0, 0, 1000);
  process.exit(1);
}

process.on('message', (msg: InitMessage) => {
  if (msg.t === 'init' && !service) void init(msg);
});

const reader = new FrameReader((body) => void handle(decodeCall(body)));
calls.on('data', (chunk: Buffer) => {
  try {
    reader.push(chunk);
  } catch (err) {
    // Not a frame from our parent: nothing read after it can be trusted. The parent restarts us.
    process.stderr.write(`${NODE_NOTICE}corrupt call pipe (${err instanceof Error ? err.message : String(err)}); restarting\n`);
    process.exit(1);
  }
});

// The parent ends this process (IPC disconnect, or SIGKILL when frozen). A Ctrl-C or a SIGTERM to the
// whole process group must not end it first: the parent would log a lost node during a clean stop.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);

// The parent is gone or closing us (the IPC channel disconnects; the call pipe closes when the
// parent dropped it): release the sessions and leave.
function leave(): void {
  try {
    service?.close();
  } finally {
    process.exit(0);
  }
}
process.on('disconnect', leave);
calls.on('close', leave);
calls.on('error', () => undefined); // 'close' follows
