import type { IncomingHttpHeaders } from "node:http";
import { type RunningServer, startHttpServer } from "@keyway/test-harness";
import { Webhook } from "standardwebhooks";

/**
 * A webhook subscriber for tests: a real HTTP server on loopback that keeps every request and
 * verifies its signature with the reference Standard Webhooks library (`standardwebhooks`), never
 * with Keyway's own code. What it answers is scripted: a queue of answers, then `fallback`.
 */
export interface ReceivedDelivery {
  headers: IncomingHttpHeaders;
  body: string;
}

/** What the subscriber does with one request: answer, or hold it open until `release()`. */
export type SubscriberAnswer =
  | { status: number; body?: string; headers?: Record<string, string> }
  | "hold";

export interface TestSubscriber {
  url: string;
  received: ReceivedDelivery[];
  /** Answers for the next requests, in order; then `fallback` (default 204). */
  answer(...answers: SubscriberAnswer[]): void;
  fallback(answer: SubscriberAnswer): void;
  /** Resolves when `count` requests have arrived (their bodies read). */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Answers every held request with `status`. */
  release(status?: number): void;
  close(): Promise<void>;
}

export async function startTestSubscriber(): Promise<TestSubscriber> {
  const received: ReceivedDelivery[] = [];
  const queue: SubscriberAnswer[] = [];
  let fallback: SubscriberAnswer = { status: 204 };
  const held: Array<(status: number) => void> = [];
  const waiters: Array<() => void> = [];

  const server: RunningServer = await startHttpServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
    for (const wake of waiters.splice(0)) wake();
    const answer = queue.shift() ?? fallback;
    if (answer === "hold") {
      await new Promise<void>((resolve) => {
        held.push((status) => {
          if (!response.destroyed) response.writeHead(status).end();
          resolve();
        });
        response.once("close", () => resolve());
      });
      return;
    }
    response.writeHead(answer.status, answer.headers ?? {});
    response.end(answer.body ?? "");
  });

  return {
    url: server.url,
    received,
    answer: (...answers) => {
      queue.push(...answers);
    },
    fallback: (answer) => {
      fallback = answer;
    },
    async waitForRequests(count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`expected ${count} requests, got ${received.length}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    release(status = 204) {
      for (const answer of held.splice(0)) answer(status);
    },
    close: () => server.close(),
  };
}

/**
 * Verifies a received delivery with the reference library: the parsed body when a `v1,`
 * signature made with `secret` is present and the timestamp is within five minutes of now;
 * throws `WebhookVerificationError` otherwise.
 */
export function verifyWithReferenceLibrary(delivery: ReceivedDelivery, secret: string): unknown {
  const headers: Record<string, string> = {};
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const value = delivery.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return new Webhook(secret).verify(delivery.body, headers);
}
