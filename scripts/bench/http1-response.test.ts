import { describe, expect, it } from "vitest";
import { readResponse } from "./http1-response";

const bytes = (text: string) => Buffer.from(text, "latin1");

function read(text: string, closed = false) {
  const response = readResponse(bytes(text), closed);
  return response && { status: response.status, body: response.body.toString("latin1") };
}

describe("readResponse", () => {
  it("reads a body framed by Content-Length, and waits for all of it", () => {
    const whole = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n\r\nhello";
    expect(read(whole)).toEqual({ status: 200, body: "hello" });
    expect(read(whole.slice(0, -1))).toBeUndefined();
    expect(read("HTTP/1.1 200 OK\r\ncontent-length: 5")).toBeUndefined();
  });

  it("reads the chunked coding, trailer fields included, and waits for its last chunk", () => {
    const whole =
      "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "4;ext=1\r\nabcd\r\na\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
    expect(read(whole)).toEqual({ status: 201, body: "abcd0123456789" });
    expect(read(whole.slice(0, -2))).toBeUndefined();
    expect(read("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nab")).toBeUndefined();
    expect(read("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n")).toEqual({
      status: 200,
      body: "",
    });
  });

  it("prefers the chunked coding over a Content-Length", () => {
    const text =
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    expect(read(text)).toEqual({ status: 200, body: "abc" });
  });

  it("ends a body framed by neither with the connection", () => {
    const text = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npartial";
    expect(read(text)).toBeUndefined();
    expect(read(text, true)).toEqual({ status: 200, body: "partial" });
  });

  it("refuses what is not a whole HTTP/1.1 response", () => {
    expect(() => read("HTTP/2 200\r\n\r\n")).toThrow(/status line/);
    expect(() => read("HTTP/1.1 200 OK\r\nbroken\r\n\r\n")).toThrow(/malformed response header/);
    expect(() => read("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n")).toThrow(/Content-Length/);
    expect(() => read("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n")).toThrow(/coding/);
    expect(() => read("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")).toThrow(
      /chunk size/,
    );
    expect(() => read("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", true)).toThrow(
      /whole response body/,
    );
    expect(() => read("HTTP/1.1 200 OK\r\n", true)).toThrow(/response head/);
  });
});
