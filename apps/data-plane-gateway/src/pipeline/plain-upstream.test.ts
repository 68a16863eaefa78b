import type { IncomingHttpHeaders } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { buildConnector, type Dispatcher, Pool } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { PlainHttpOrigin } from "./plain-upstream";

/**
 * The plain-HTTP upstream client against a raw TCP server on loopback that answers each request
 * head with bytes the test writes itself: framing, reuse, refusal of ambiguous responses,
 * timeouts and backpressure.
 */

interface Upstream {
  origin: string;
  /** Request heads received, per connection index. */
  requests: { conn: number; head: string }[];
  sockets: Socket[];
  close(): Promise<void>;
}

/** `answer(head, socket, connIndex)` writes the response for each complete request head. */
async function rawUpstream(
  answer: (head: string, socket: Socket, conn: number) => void,
): Promise<Upstream> {
  const requests: { conn: number; head: string }[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    const conn = sockets.length;
    sockets.push(socket);
    let buffered = "";
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("latin1");
      let end = buffered.indexOf("\r\n\r\n");
      while (end >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        requests.push({ conn, head });
        answer(head, socket, conn);
        end = buffered.indexOf("\r\n\r\n");
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return {
    origin: `http://127.0.0.1:${address.port}`,
    requests,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Outcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  error: (Error & { code?: string }) | null;
}

/** A dispatch handler that records what it is told. */
function recorder(onStart?: (controller: Dispatcher.DispatchController) => void) {
  let settle: (outcome: Outcome) => void = () => {};
  const done = new Promise<Outcome>((resolve) => {
    settle = resolve;
  });
  const outcome: Outcome = { status: 0, headers: {}, body: "", error: null };
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart() {},
    onResponseStart(controller, status, headers) {
      outcome.status = status;
      outcome.headers = headers;
      onStart?.(controller);
    },
    onResponseData(_controller, chunk) {
      outcome.body += chunk.toString("latin1");
    },
    onResponseEnd() {
      settle(outcome);
    },
    onResponseError(_controller, error) {
      outcome.error = error;
      settle(outcome);
    },
  };
  return { handler, done };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(
  answer: (head: string, socket: Socket, conn: number) => void,
  options: { headersTimeoutMs?: number; bodyTimeoutMs?: number; keepAliveTimeoutMs?: number } = {},
) {
  const upstream = await rawUpstream(answer);
  const fallback = new Pool(upstream.origin);
  const plain = new PlainHttpOrigin(upstream.origin, {
    connect: buildConnector({ timeout: 2000 }),
    headersTimeoutMs: options.headersTimeoutMs ?? 5000,
    bodyTimeoutMs: options.bodyTimeoutMs ?? 5000,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 60_000,
    fallback,
  });
  cleanups.push(async () => {
    await upstream.close();
    await Promise.race([plain.close(), new Promise((r) => setTimeout(r, 500))]);
    await fallback.destroy();
  });
  const get = (path = "/x", headers: string[] = []) => {
    const { handler, done } = recorder();
    plain.dispatch(
      { origin: upstream.origin, method: "GET", path, headers: ["host", "up.test", ...headers] },
      handler,
    );
    return done;
  };
  return { upstream, plain, get };
}

const ok = (body: string, extra = "") =>
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;
const turn = () => new Promise((r) => setImmediate(r));

describe("PlainHttpOrigin", () => {
  it("writes the head as undici would and reuses the connection after a loop turn", async () => {
    const { upstream, get } = await setup((_head, socket) => socket.write(ok("hello")));
    const first = await get("/a?b=1", ["x-one", "1", "authorization", "Bearer s"]);
    expect(first).toMatchObject({ status: 200, body: "hello", error: null });
    expect(first.headers["content-type"]).toBe("text/plain");
    await turn();
    const second = await get("/b");
    expect(second.body).toBe("hello");
    expect(upstream.requests.map((r) => r.conn)).toEqual([0, 0]);
    expect(upstream.requests[0]?.head).toBe(
      "GET /a?b=1 HTTP/1.1\r\nhost: up.test\r\nconnection: keep-alive\r\nx-one: 1\r\nauthorization: Bearer s",
    );
  });

  it("decodes chunked bodies (extensions, trailers) split at every byte", async () => {
    const body =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n";
    const { upstream, get } = await setup((_head, socket) => {
      let i = 0;
      const next = () => {
        if (i >= body.length) return;
        socket.write(body[i++] as string, "latin1");
        setImmediate(next);
      };
      next();
    });
    expect(await get()).toMatchObject({ status: 200, body: "hello world", error: null });
    await turn();
    expect((await get()).body).toBe("hello world");
    expect(upstream.sockets).toHaveLength(1);
  });

  it("reads no body for 204 and 304, repeated headers become lists, 1xx are skipped", async () => {
    const answers = [
      "HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    ];
    const { upstream, get } = await setup((_head, socket, _conn) =>
      socket.write(answers.shift() ?? ok("z")),
    );
    expect(await get()).toMatchObject({ status: 204, body: "", error: null });
    await turn();
    const notModified = await get();
    expect(notModified).toMatchObject({ status: 304, body: "", error: null });
    expect(notModified.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    await turn();
    expect((await get()).body).toBe("z");
    expect(upstream.sockets).toHaveLength(1);
  });

  it("keeps header names Object.prototype has as plain values, refuses __proto__", async () => {
    const answers = [
      ok("a", "toString: 1\r\nconstructor: 2\r\nconstructor: 3\r\n"),
      ok("b", "__proto__: 1\r\n"),
    ];
    const { get } = await setup((_head, socket) => socket.write(answers.shift() ?? ok("z")));
    const first = await get();
    expect(first.headers.tostring).toBe("1");
    expect(first.headers.constructor).toEqual(["2", "3"]);
    expect(Object.keys(first.headers)).toEqual([
      "content-type",
      "content-length",
      "tostring",
      "constructor",
    ]);
    expect((await get()).error?.code).toBe("HPE_INVALID_HEADER_TOKEN");
  });

  it("reads a body without length to the connection's end and never reuses it", async () => {
    const { upstream, get } = await setup((_head, socket) => {
      socket.write("HTTP/1.1 200 OK\r\n\r\npart one, ");
      setTimeout(() => socket.end("part two"), 20);
    });
    expect(await get()).toMatchObject({ status: 200, body: "part one, part two", error: null });
    await turn();
    expect((await get()).body).toBe("part one, part two");
    expect(upstream.sockets).toHaveLength(2);
  });

  it("refuses ambiguous framing and drops the connection", async () => {
    const bad = [
      "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\ncontent-length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nbad header: 1\r\ncontent-length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\nx: 1\r\ncontent-length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
      "HTTP/2 200\r\ncontent-length: 0\r\n\r\n",
      `HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`,
    ];
    const { upstream, get } = await setup((_head, socket, conn) => socket.write(bad[conn] ?? ""));
    for (let i = 0; i < bad.length; i++) {
      const outcome = await get();
      expect(outcome.error, bad[i]?.slice(0, 60)).not.toBeNull();
      expect(outcome.error?.code).toMatch(/^(HPE_|UND_ERR_HEADERS_OVERFLOW)/);
      await turn();
    }
    expect(upstream.sockets).toHaveLength(bad.length);
  });

  it("drops a connection that sent more than the response, and one that talks while idle", async () => {
    const { upstream, get } = await setup((_head, socket, conn) => {
      if (conn === 0) socket.write(`${ok("a")}HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nforged`);
      else if (conn === 1) {
        socket.write(ok("b"));
        // Unsolicited, after the response: must never be read as the next request's answer.
        setTimeout(() => socket.write(ok("forged")), 5);
      } else socket.write(ok("c"));
    });
    expect((await get()).body).toBe("a");
    await turn();
    expect((await get()).body).toBe("b");
    await new Promise((r) => setTimeout(r, 30));
    expect((await get()).body).toBe("c");
    expect(upstream.requests.map((r) => r.conn)).toEqual([0, 1, 2]);
  });

  it("takes the next request to a new connection when the idle one closes", async () => {
    const { upstream, get } = await setup((_head, socket, conn) => {
      socket.write(ok(`n${conn}`));
      if (conn === 0) setTimeout(() => socket.end(), 5);
    });
    expect((await get()).body).toBe("n0");
    await new Promise((r) => setTimeout(r, 30));
    expect((await get()).body).toBe("n1");
    expect(upstream.sockets).toHaveLength(2);
  });

  it("reports a connection lost before the response as UND_ERR_SOCKET (retryable)", async () => {
    const { get } = await setup((_head, socket) => socket.destroy());
    expect((await get()).error?.code).toMatch(/^(UND_ERR_SOCKET|ECONNRESET)$/);
  });

  it("does not reuse a connection after Connection: close or HTTP/1.0", async () => {
    const { upstream, get } = await setup((_head, socket, conn) =>
      socket.write(
        conn === 0
          ? ok("a", "connection: close\r\n")
          : conn === 1
            ? "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nb"
            : ok("c"),
      ),
    );
    expect((await get()).body).toBe("a");
    await turn();
    expect((await get()).body).toBe("b");
    await turn();
    expect((await get()).body).toBe("c");
    expect(upstream.requests.map((r) => r.conn)).toEqual([0, 1, 2]);
  });

  it("refuses header values and paths that would split the request", async () => {
    const { plain, upstream } = await setup((_head, socket) => socket.write(ok("x")));
    const { handler } = recorder();
    const send = (path: string, headers: string[]) => () =>
      plain.dispatch({ origin: upstream.origin, method: "GET", path, headers }, handler);
    expect(send("/", ["authorization", "Bearer a\r\nx-injected: 1"])).toThrow(
      expect.objectContaining({ code: "UND_ERR_INVALID_ARG" }),
    );
    expect(send("/", ["bad name", "1"])).toThrow(
      expect.objectContaining({ code: "UND_ERR_INVALID_ARG" }),
    );
    expect(send("/a b", [])).toThrow(expect.objectContaining({ code: "UND_ERR_INVALID_ARG" }));
    expect(send("/", ["x", "nul\u0000"])).toThrow(
      expect.objectContaining({ code: "UND_ERR_INVALID_ARG" }),
    );
    expect(upstream.requests).toHaveLength(0);
  });

  it("times out waiting for the head, and between body bytes", async () => {
    const { get } = await setup(
      (head, socket) => {
        if (head.startsWith("GET /slow-body"))
          socket.write("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc");
      },
      { headersTimeoutMs: 150, bodyTimeoutMs: 150 },
    );
    const started = Date.now();
    expect((await get("/silent")).error?.code).toBe("UND_ERR_HEADERS_TIMEOUT");
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const slow = await get("/slow-body");
    expect(slow.status).toBe(200);
    expect(slow.error?.code).toBe("UND_ERR_BODY_TIMEOUT");
  });

  it("stops reading while paused and delivers the held bytes in order on resume", async () => {
    const body = "0123456789".repeat(20_000);
    const upstream = await rawUpstream((_head, socket) => socket.write(ok(body)));
    const fallback = new Pool(upstream.origin);
    const plain = new PlainHttpOrigin(upstream.origin, {
      connect: buildConnector({ timeout: 2000 }),
      headersTimeoutMs: 5000,
      bodyTimeoutMs: 5000,
      keepAliveTimeoutMs: 60_000,
      fallback,
    });
    cleanups.push(async () => {
      await upstream.close();
      await fallback.destroy();
    });
    let received = "";
    let pauses = 0;
    const finished = new Promise<void>((resolve, reject) => {
      plain.dispatch(
        { origin: upstream.origin, method: "GET", path: "/", headers: [] },
        {
          onResponseData(controller, chunk) {
            received += chunk.toString("latin1");
            controller.pause();
            pauses++;
            setTimeout(() => controller.resume(), 1);
          },
          onResponseEnd: () => resolve(),
          onResponseError: (_c, error) => reject(error),
        },
      );
    });
    await finished;
    expect(received).toBe(body);
    expect(pauses).toBeGreaterThan(1);
  });

  it("delivers a body the upstream sent before closing, even while the handler is paused", async () => {
    const body = "abcdefghij".repeat(10_000);
    for (const answer of [
      `HTTP/1.1 200 OK\r\n\r\n${body}`, // ends with the connection
      `HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    ]) {
      const upstream = await rawUpstream((_head, socket) => socket.end(answer));
      const fallback = new Pool(upstream.origin);
      const plain = new PlainHttpOrigin(upstream.origin, {
        connect: buildConnector({ timeout: 2000 }),
        headersTimeoutMs: 5000,
        bodyTimeoutMs: 5000,
        keepAliveTimeoutMs: 60_000,
        fallback,
      });
      cleanups.push(async () => {
        await upstream.close();
        await fallback.destroy();
      });
      let received = "";
      const outcome = await new Promise<string>((resolve) => {
        plain.dispatch(
          { origin: upstream.origin, method: "GET", path: "/", headers: [] },
          {
            onResponseData(controller, chunk) {
              received += chunk.toString("latin1");
              // Paused long enough for the upstream's FIN to arrive behind the held bytes.
              controller.pause();
              setTimeout(() => controller.resume(), 20);
            },
            onResponseEnd: () => resolve("end"),
            onResponseError: (_c, error) => resolve(`error ${error.message}`),
          },
        );
      });
      expect(outcome).toBe("end");
      expect(received.length).toBe(body.length);
      expect(received).toBe(body);
    }
  });

  it("leaves requests with a body, HEAD and framing headers to the fallback", async () => {
    // undici (the fallback) sends the body right after the head: it is left in the raw server's
    // buffer and read as the start of the next head, hence `includes`.
    const { upstream, plain } = await setup((head, socket) => {
      if (head.includes("HEAD /")) socket.write("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n");
      else socket.write(ok("posted"));
    });
    const post = recorder();
    plain.dispatch(
      {
        origin: upstream.origin,
        method: "POST",
        path: "/",
        headers: ["host", "up.test"],
        body: "abc",
      },
      post.handler,
    );
    expect((await post.done).body).toBe("posted");
    const head = recorder();
    plain.dispatch(
      { origin: upstream.origin, method: "HEAD", path: "/", headers: [] },
      head.handler,
    );
    expect(await head.done).toMatchObject({ status: 200, body: "", error: null });
    expect(
      upstream.requests.map((r) => r.head.split("\r\n").includes("content-length: 3")),
    ).toEqual([true, false]);
  });
});
