import { describe, expect, it } from "vitest";
import { readSecrets, type SecretInput } from "./secret-input";

function piped(text: string): SecretInput {
  return {
    isTTY: false,
    readAll: async () => text,
    promptHidden: () => Promise.reject(new Error("not a terminal")),
  };
}

describe("readSecrets", () => {
  it("takes standard input as the value of a single field, without its trailing newline", async () => {
    expect(await readSecrets(piped("sk-1\n"), ["apiKey"])).toEqual({ apiKey: "sk-1" });
    expect(await readSecrets(piped("sk-1\r\n"), ["apiKey"])).toEqual({ apiKey: "sk-1" });
    // Inner whitespace and a second newline belong to the secret.
    expect(await readSecrets(piped("a b\n\n"), ["apiKey"])).toEqual({ apiKey: "a b\n" });
  });

  it("reads a JSON object for several fields and names what is missing", async () => {
    expect(
      await readSecrets(piped('{"clientId":"id","clientSecret":"s"}'), [
        "clientId",
        "clientSecret",
      ]),
    ).toEqual({ clientId: "id", clientSecret: "s" });
    await expect(
      readSecrets(piped('{"clientId":"id"}'), ["clientId", "clientSecret"]),
    ).rejects.toThrow('standard input has no string "clientSecret"');
    await expect(readSecrets(piped("id s"), ["clientId", "clientSecret"])).rejects.toThrow(
      'must be a JSON object with "clientId", "clientSecret"',
    );
  });

  it("refuses an empty secret", async () => {
    await expect(readSecrets(piped("\n"), ["apiKey"])).rejects.toThrow("apiKey is empty");
  });

  it("asks each field on a terminal", async () => {
    const asked: string[] = [];
    const terminal: SecretInput = {
      isTTY: true,
      readAll: () => Promise.reject(new Error("a terminal is not read to its end")),
      promptHidden: async (question) => {
        asked.push(question);
        return `value-of-${question}`;
      },
    };
    expect(await readSecrets(terminal, ["a", "b"])).toEqual({
      a: "value-of-a: ",
      b: "value-of-b: ",
    });
    expect(asked).toEqual(["a: ", "b: "]);
  });
});
