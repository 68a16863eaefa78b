import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { formatEnvironment } from "./env-format";

const env = {
  HTTPS_PROXY: "http://session:a.b-c_d@127.0.0.1:3128",
  ODD: 'it\'s $HOME "quoted"',
};

describe("formatEnvironment", () => {
  it("shell output survives eval in sh unchanged", () => {
    const script = `${formatEnvironment(env, "shell")}printf '%s\\n%s' "$HTTPS_PROXY" "$ODD"`;
    expect(execFileSync("sh", ["-c", script], { encoding: "utf8", env: {} })).toBe(
      `${env.HTTPS_PROXY}\n${env.ODD}`,
    );
  });

  it("dotenv leaves Keyway's values unquoted and quotes the rest; json is one object", () => {
    expect(formatEnvironment(env, "dotenv")).toBe(
      `HTTPS_PROXY=${env.HTTPS_PROXY}\nODD="it's $HOME \\"quoted\\""\n`,
    );
    expect(JSON.parse(formatEnvironment(env, "json"))).toEqual(env);
  });
});
