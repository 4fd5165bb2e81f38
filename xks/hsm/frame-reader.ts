// The frames of wire.ts out of a byte stream: a pipe hands over chunks that may end inside a frame
// or hold several. Each frame is a u32 little-endian length, then that many bytes.

export const FRAME_HEADER_BYTES = 4;
/** Far above any call or reply (a few KB); a length beyond it means the stream is corrupt. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export class FrameReader {
  /** The chunks of an incomplete frame, and how many bytes it needs before it can be read on. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private need = 0;

  constructor(private readonly onFrame: (body: Buffer) => void) {}

  /**
   * Hands every complete frame to onFrame, in order (a view into the chunk, not a copy). Throws a
   * RangeError for a length no frame can have: the stream is lost, and so is this reader.
   */
  push(chunk: Buffer): void {
    if (this.heldBytes > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      // Concatenated once the frame is whole, not at each chunk of a large one.
      if (this.heldBytes < this.need) return;
      chunk = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
    }
    let at = 0;
    this.need = FRAME_HEADER_BYTES;
    while (chunk.length - at >= FRAME_HEADER_BYTES) {
      const n = chunk.readUInt32LE(at);
      if (n === 0 || n > MAX_FRAME_BYTES) throw new RangeError(`corrupt frame length ${n}`);
      if (chunk.length - at - FRAME_HEADER_BYTES < n) {
        this.need = FRAME_HEADER_BYTES + n;
        break;
      }
      at += FRAME_HEADER_BYTES;
      this.onFrame(chunk.subarray(at, at + n));
      at += n;
    }
    if (at < chunk.length) {
      this.held.push(chunk.subarray(at));
      this.heldBytes = chunk.length - at;
    }
  }
}
