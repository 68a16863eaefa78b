import { Transform, type TransformCallback } from "node:stream";
import type { BodyScrub, ScrubTally, SecretScrubber } from "./secret-scrubber";

/**
 * The scrub for the upstream's side of a WebSocket after a 101 (RFC 6455 §5.2): frame headers
 * pass on as they are, each frame's payload goes through the body scrub, and what the scrub held
 * back is sent when the frame ends. Without the frame boundaries, a frame whose last bytes begin
 * the secret (a message ending in "s" when the secret starts with "sk-") would wait for the
 * upstream's next frame, and an interactive protocol would stall on it. A secret split over two
 * frames of a fragmented message is not recognized: a frame header lies between its halves.
 * Server frames are unmasked, so their payloads are the bytes the upstream wrote.
 */

/** Longest frame header: 2 bytes, a 64-bit length, a masking key. */
const HEADER_MAX = 14;

/** The length of a header whose first `read` bytes are in `head` (2 until the second is known). */
function headerLength(head: Buffer, read: number): number {
  if (read < 2) return 2;
  const length7 = head[1]! & 0x7f;
  const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  return 2 + extended + ((head[1]! & 0x80) === 0 ? 0 : 4);
}

function payloadLength(head: Buffer): number {
  const length7 = head[1]! & 0x7f;
  if (length7 === 126) return head.readUInt16BE(2);
  if (length7 === 127) return Number(head.readBigUInt64BE(2));
  return length7;
}

export class WebSocketFrameScrub extends Transform {
  readonly #body: BodyScrub;
  /** The current frame header, while it is read (its bytes are passed on as they come). */
  readonly #head = Buffer.alloc(HEADER_MAX);
  #headRead = 0;
  /** Payload bytes of the current frame still to come; 0 while a header is read. */
  #payloadLeft = 0;

  constructor(scrubber: SecretScrubber, tally: ScrubTally) {
    super();
    this.#body = scrubber.body(tally);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#payloadLeft > 0) {
        const end = at + Math.min(this.#payloadLeft, chunk.length - at);
        const out = this.#body.push(chunk.subarray(at, end));
        if (out.length > 0) this.push(out);
        this.#payloadLeft -= end - at;
        at = end;
        if (this.#payloadLeft === 0) this.#endFrame();
        continue;
      }
      const from = at;
      while (at < chunk.length) {
        this.#head[this.#headRead++] = chunk[at++]!;
        if (this.#headRead === headerLength(this.#head, this.#headRead)) {
          this.#payloadLeft = payloadLength(this.#head);
          this.#headRead = 0;
          break;
        }
      }
      this.push(chunk.subarray(from, at));
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.#endFrame();
    done();
  }

  #endFrame(): void {
    const tail = this.#body.end();
    if (tail.length > 0) this.push(tail);
  }
}
