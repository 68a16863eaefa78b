import { describe, expect, it } from "vitest";
import { EXTRA_CA_ENV_VARS, sandboxEnvironment, sandboxFiles, sandboxLayout } from "./environment";

const layout = sandboxLayout("/sandbox/home", "/sandbox/work");
const session = {
  env: [
    { name: "OPENAI_API_KEY", value: "keyway-placeholder", bindingId: "b1" },
    { name: "HTTPS_PROXY", value: "http://elsewhere:1", bindingId: "b1" },
  ],
  proxyEnv: {
    HTTP_PROXY: "http://session:t@gw:3128",
    HTTPS_PROXY: "http://session:t@gw:3128",
    http_proxy: "http://session:t@gw:3128",
    https_proxy: "http://session:t@gw:3128",
    NO_PROXY: "localhost,::1",
    no_proxy: "localhost,::1",
  },
  caEnvVars: [
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
  ],
};

describe("sandboxEnvironment", () => {
  it("points every CA variable at the one bundle and sets the proxy in both spellings", () => {
    const env = sandboxEnvironment(session, layout);
    for (const name of [...session.caEnvVars, ...EXTRA_CA_ENV_VARS]) {
      expect(env[name]).toBe("/sandbox/home/.keyway/ca-bundle.pem");
    }
    expect(env.HTTPS_PROXY).toBe("http://session:t@gw:3128");
    expect(env.https_proxy).toBe("http://session:t@gw:3128");
    expect(env.NO_PROXY).toBe("localhost,::1");
    expect(env.HOME).toBe("/sandbox/home");
    expect(env.OPENAI_API_KEY).toBe("keyway-placeholder");
    expect(env.NODE_USE_ENV_PROXY).toBe("1");
    expect(env.NODE_OPTIONS).toBe("--import=file:///sandbox/home/.keyway/node-proxy-preload.mjs");
  });

  it("drops the parent's proxy, CA and KEYWAY_* variables and keeps the rest", () => {
    const env = sandboxEnvironment(session, layout, {
      PATH: "/usr/bin",
      KEYWAY_TOKEN: "kw_org_token",
      KEYWAY_URL: "http://api",
      ALL_PROXY: "socks5://x",
      https_proxy: "http://old",
      NO_PROXY: "127.0.0.1",
      SSL_CERT_DIR: "/etc/other",
      NODE_OPTIONS: "--max-old-space-size=100",
    });
    expect(env.PATH).toBe("/usr/bin");
    expect(env.KEYWAY_TOKEN).toBeUndefined();
    expect(env.KEYWAY_URL).toBeUndefined();
    expect(env.ALL_PROXY).toBeUndefined();
    expect(env.SSL_CERT_DIR).toBeUndefined();
    expect(env.https_proxy).toBe("http://session:t@gw:3128");
    expect(env.NO_PROXY).toBe("localhost,::1");
    expect(env.NODE_OPTIONS).toBe(
      "--max-old-space-size=100 --import=file:///sandbox/home/.keyway/node-proxy-preload.mjs",
    );
  });

  it("percent-encodes a preload path with spaces, so NODE_OPTIONS needs no quotes", () => {
    const env = sandboxEnvironment(session, sandboxLayout("/my home", "/w"));
    expect(env.NODE_OPTIONS).toBe("--import=file:///my%20home/.keyway/node-proxy-preload.mjs");
  });
});

describe("sandboxFiles", () => {
  it("places plan files under their root, then the CA bundle and the preload", () => {
    const files = sandboxFiles(
      {
        caCertPem: "",
        files: [
          {
            id: "f1",
            bindingId: "b",
            clientId: "c",
            root: "home",
            path: ".codex/config.toml",
            mode: 0o600,
            content: "x",
          },
          {
            id: "f2",
            bindingId: "b",
            clientId: "c",
            root: "workspace",
            path: ".mcp.json",
            mode: 0o644,
            content: "y",
          },
        ],
      },
      layout,
      { caBundle: "bundle", nodePreload: "preload" },
    );
    expect(files.map((f) => [f.path, f.mode])).toEqual([
      ["/sandbox/home/.codex/config.toml", 0o600],
      ["/sandbox/work/.mcp.json", 0o644],
      ["/sandbox/home/.keyway/ca-bundle.pem", 0o644],
      ["/sandbox/home/.keyway/node-proxy-preload.mjs", 0o644],
    ]);
  });
});
