import type { IncomingHttpHeaders } from "node:http";
import type { Transform } from "node:stream";
import type { Dispatcher } from "undici";
import { HandlerDecorator } from "../handler-decorator";
import {
  type ContentCoding,
  contentCodingOf,
  createDecoder,
  decodedHeaders,
  ENCODING_UNSUPPORTED,
} from "./content-decoding";
import type { BodyScrub, ScrubTally, SecretScrubber } from "./secret-scrubber";

/**
 * An undici dispatch-handler decorator, directly around the forward stage's relay on routes where
 * a credential was injected (`ForwardTarget.scrubber`): response header values and the body
 * reach the relay with the credential masked (`secret-scrubber.ts`), chunk by chunk as they
 * arrive. A gzip, deflate or br body is decoded first (`content-decoding.ts`) and relayed
 * decoded; any other coding is refused with 502 `upstream_encoding_unsupported` before anything
 * is relayed. Counts go to `tally` (the relay, which reports them to the record stage).
 */
export class ResponseScrubber extends HandlerDecorator {
  #body: BodyScrub | null = null;
  /** Set for a compressed body: the relay is handed this controller from its headers on. */
  #decoded: DecodedBody | null = null;
  /** Set once the response was refused or failed here: later upstream events are dropped. */
  #done = false;

  constructor(
    inner: Dispatcher.DispatchHandler,
    private readonly scrubber: SecretScrubber,
    private readonly tally: ScrubTally,
  ) {
    super(inner);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    // 1xx answers are not relayed (and carry no body).
    if (statusCode < 200) {
      super.onResponseStart(controller, statusCode, headers, statusMessage);
      return;
    }
    const coding = contentCodingOf(headers["content-encoding"]);
    if (coding === null) {
      this.#done = true;
      this.inner.onResponseError?.(controller, ENCODING_UNSUPPORTED);
      controller.abort(ENCODING_UNSUPPORTED);
      return;
    }
    const scrubbed = this.scrubber.scrubHeaders(headers, this.tally);
    const text = statusMessage && this.scrubber.scrubText(statusMessage, this.tally);
    this.#body = this.scrubber.body(this.tally);
    if (coding === "identity") {
      this.inner.onResponseStart?.(controller, statusCode, scrubbed, text);
      return;
    }
    this.#decoded = new DecodedBody(controller, coding, this);
    this.inner.onResponseStart?.(this.#decoded, statusCode, decodedHeaders(scrubbed), text);
  }

  override onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (this.#decoded !== null) this.#decoded.write(chunk);
    else this.relayBody(controller, chunk);
  }

  override onResponseEnd(
    controller: Dispatcher.DispatchController,
    trailers: IncomingHttpHeaders,
  ): void {
    if (this.#done) return;
    if (this.#decoded !== null) this.#decoded.end(trailers);
    else this.endBody(controller, trailers);
  }

  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#done) return;
    if (this.#decoded === null) {
      // Before any response, too: a connection error the relay may retry with this same handler.
      super.onResponseError(controller, error);
      return;
    }
    this.failBody(error);
  }

  /** Plain (or decoded) body bytes: scrubbed and relayed. */
  relayBody(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const out = this.#body?.push(chunk) ?? chunk;
    if (out.length > 0) this.inner.onResponseData?.(controller, out);
  }

  endBody(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    const tail = this.#body?.end();
    if (tail !== undefined && tail.length > 0) this.inner.onResponseData?.(controller, tail);
    this.inner.onResponseEnd?.(controller, trailers);
  }

  /** The decoder failed, the upstream broke off, or the relay gave up: ends the exchange once. */
  failBody(error: Error): void {
    const decoded = this.#decoded;
    if (this.#done || decoded === null) return;
    this.#done = true;
    decoded.stop(error);
    this.inner.onResponseError?.(decoded, error);
  }
}

/**
 * A compressed body on its way through a decoder, and the controller the relay uses from the
 * response's headers on: pausing it pauses the decoder's output; the decoder's own backpressure
 * pauses the upstream, so a small compressed body that inflates hugely is never held in memory.
 */
class DecodedBody implements Dispatcher.DispatchController {
  #decoder: Transform | null = null;
  #paused = false;

  constructor(
    private readonly upstream: Dispatcher.DispatchController,
    private readonly coding: Exclude<ContentCoding, "identity">,
    private readonly owner: ResponseScrubber,
  ) {}

  get aborted(): boolean {
    return this.upstream.aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.upstream.reason;
  }

  pause(): void {
    this.#paused = true;
    this.#decoder?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#decoder?.resume();
  }

  /** The relay aborts (its client left): the upstream may be done already, so end it here. */
  abort(reason: Error): void {
    this.owner.failBody(reason);
  }

  write(chunk: Buffer): void {
    if (chunk.length === 0) return;
    // Created on the first byte: `deflate` needs it, and a body-less answer (HEAD, 304) needs none.
    const decoder = this.#decoder ?? this.#start(chunk[0]!);
    if (!decoder.write(chunk)) this.upstream.pause();
  }

  end(trailers: IncomingHttpHeaders): void {
    const decoder = this.#decoder;
    if (decoder === null) {
      this.owner.endBody(this, trailers);
      return;
    }
    decoder.once("end", () => this.owner.endBody(this, trailers));
    decoder.end();
  }

  stop(reason: Error): void {
    this.#decoder?.destroy();
    this.upstream.abort(reason);
  }

  #start(firstByte: number): Transform {
    const decoder = createDecoder(this.coding, firstByte);
    decoder.on("data", (chunk: Buffer) => this.owner.relayBody(this, chunk));
    decoder.on("drain", () => this.upstream.resume());
    decoder.on("error", (error: Error) => this.owner.failBody(error));
    if (this.#paused) decoder.pause();
    this.#decoder = decoder;
    return decoder;
  }
}
