/**
 * Memory per intercepted tunnel (issue 14, "Deployment": the gateway's memory request comes from
 * this figure).
 *
 *   pnpm bench:tunnel-memory [--tunnels 2500] [--rounds 2] [--json FILE]
 *
 * Holds `--tunnels` intercepted (TLS-terminated) CONNECT tunnels open against the real gateway
 * bundle, each having sent one request through it, and reads the gateway's memory after full
 * garbage collections: before (every tunnel closed, after a warm-up that loaded the session, plan,
 * credential and leaf), while held, and after the client closed them all. Each round opens and
 * closes the full set again, so memory kept once (pools, caches) shows as a constant and memory
 * kept per tunnel as growth from round to round.
 *
 * Processes: the upstream (`gateway-upstream.ts`), the gateway bundle under
 * `node --expose-gc --import memory-probe.mjs` (memory read on SIGUSR2), and this process: the
 * control plane on an embedded PostgreSQL (`gateway-control-plane.ts`) and the tunnels' client.
 * Idle intercepted connections are closed by the gateway after 60 s (its keep-alive timeout), as
 * a sandbox's would be: held tunnels send another request every 20 s to stay open.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, readdirSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { createTestCa, getFreePort } from "@keyway/test-harness";
import { buildService, SERVICE_NODE_FLAGS } from "../build";
import { jsonOutputPath, machineFacts, writeJson } from "./bench-lib";
import {
  type BenchControlPlane,
  benchGatewayConfig,
  startBenchControlPlane,
} from "./gateway-control-plane";
import { isReady } from "./processes";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "../..");
const SECRET = "sk-bench-0123456789abcdef";
const PATH = "/v1/items/42";
/** Tunnels opened at once: enough to go fast, few enough not to time out TLS handshakes. */
const OPEN_CONCURRENCY = 50;
/** Below the gateway's 60 s keep-alive timeout for intercepted connections. */
const REFRESH_MS = 20_000;

function intFlag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes an integer ≥ 1`);
  return value;
}

const TUNNELS = intFlag("--tunnels", 2500);
const ROUNDS = intFlag("--rounds", 2);

interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

interface Sample extends MemoryUsage {
  phase: string;
  /** Open file descriptors of the gateway: each held tunnel is one. */
  fds: number;
}

/** One held tunnel: the client's TLS socket inside a CONNECT through the gateway. */
interface Tunnel {
  socket: TLSSocket;
  lastUsed: number;
  busy: boolean;
}

/** Reads one HTTP/1.1 response (Content-Length or chunked) from a keep-alive socket. */
function readResponse(socket: TLSSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (error: Error | null, status = 0) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      if (error) reject(error);
      else resolve(status);
    };
    const onClose = () => done(new Error("tunnel closed before its response"));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buffered.subarray(0, end).toString("latin1");
      const status = Number(head.slice(9, 12));
      const body = buffered.subarray(end + 4);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (length) {
        if (body.length >= Number(length[1])) done(null, status);
      } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        if (body.includes("0\r\n\r\n")) done(null, status);
      } else {
        done(new Error(`response without a length: ${head}`));
      }
    };
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

async function request(tunnel: Tunnel, authority: string): Promise<void> {
  tunnel.busy = true;
  const answered = readResponse(tunnel.socket);
  tunnel.socket.write(`GET ${PATH} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
  const status = await answered;
  if (status !== 200) throw new Error(`request through the tunnel answered ${status}`);
  tunnel.lastUsed = Date.now();
  tunnel.busy = false;
}

async function openTunnel(
  proxyPort: number,
  authority: string,
  proxyAuthorization: string,
  gatewayCa: string,
): Promise<Tunnel> {
  const raw: Socket = connect(proxyPort, "127.0.0.1");
  await once(raw, "connect");
  raw.write(
    `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\nproxy-authorization: ${proxyAuthorization}\r\n\r\n`,
  );
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const [chunk] = (await once(raw, "data")) as [Buffer];
    head += chunk.toString("latin1");
  }
  if (!head.startsWith("HTTP/1.1 200"))
    throw new Error(`CONNECT refused: ${head.split("\r\n")[0]}`);
  const socket = tlsConnect({
    socket: raw,
    servername: "localhost",
    ca: gatewayCa,
    ALPNProtocols: ["http/1.1"],
  });
  await once(socket, "secureConnect");
  socket.on("error", () => socket.destroy());
  const tunnel: Tunnel = { socket, lastUsed: 0, busy: false };
  await request(tunnel, authority);
  return tunnel;
}

/** Opens `count` tunnels into `tunnels` (filled as they open, so they are kept busy meanwhile). */
async function openTunnels(
  count: number,
  open: () => Promise<Tunnel>,
  tunnels: Tunnel[] = [],
): Promise<Tunnel[]> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, async () => {
      while (next < count) {
        next++;
        tunnels.push(await open());
      }
    }),
  );
  return tunnels;
}

async function closeTunnels(tunnels: Tunnel[]): Promise<void> {
  await Promise.all(
    tunnels.map(async ({ socket }) => {
      if (socket.destroyed) return;
      const closed = once(socket, "close");
      socket.end();
      socket.destroy();
      await closed;
    }),
  );
}

function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

async function main() {
  const machine = machineFacts(`pnpm bench:tunnel-memory ${process.argv.slice(2).join(" ")}`);
  const jsonFile = jsonOutputPath();
  const dir = await mkdtemp(join(tmpdir(), "keyway-bench-tunnels-"));
  await chmod(dir, 0o755);
  const children: ChildProcess[] = [];
  let cp: BenchControlPlane | undefined;
  try {
    const upstreamCa = await createTestCa({ commonName: "Bench upstream CA" });
    const gatewayCa = await createTestCa({ commonName: "Bench gateway CA" });
    const upstreamLeaf = await upstreamCa.issueLeaf({ hosts: ["localhost", "127.0.0.1"] });
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const [upstreamHttp, upstreamHttps] = await Promise.all([getFreePort(), getFreePort()]);
    const authority = `localhost:${upstreamHttps}`;
    cp = await startBenchControlPlane({
      baseUrls: [`https://${authority}/v1`],
      secret: SECRET,
      tokenTtlSeconds: 3 * 3600,
    });
    const upstream = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(here, "gateway-upstream.ts"),
        String(upstreamHttp),
        String(upstreamHttps),
        file("upstream-cert.pem", upstreamLeaf.certPem),
        file("upstream-key.pem", upstreamLeaf.keyPem),
      ],
      { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
    );
    children.push(upstream);
    await once(upstream.stdout, "data");

    // Chosen just before the gateway starts: the embedded PostgreSQL took a port meanwhile.
    const [proxyPort, adminPort] = await Promise.all([getFreePort(), getFreePort()]);
    const config = file(
      "keyway.toml",
      benchGatewayConfig(cp, {
        proxyPort,
        adminPort,
        caCertPath: file("gateway-ca.pem", gatewayCa.certPem),
        caKeyPath: file("gateway-ca-key.pem", gatewayCa.keyPem),
        gatewayKeyPath: file("gateway-key.json", JSON.stringify(cp.gatewayKey.privateJwk)),
      }),
    );
    const logFd = openSync(join(dir, "gateway.log"), "w");
    const gateway = spawn(
      process.execPath,
      [
        "--expose-gc",
        ...SERVICE_NODE_FLAGS["data-plane-gateway"],
        "--import",
        join(here, "memory-probe.mjs"),
        await buildService("data-plane-gateway"),
      ],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          KEYWAY_CONFIG: config,
          NODE_EXTRA_CA_CERTS: file("upstream-ca.pem", upstreamCa.certPem),
        },
        stdio: ["ignore", logFd, "pipe"],
      },
    );
    closeSync(logFd);
    children.push(gateway);
    let stderr = "";
    const probes: MemoryUsage[] = [];
    gateway.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      for (;;) {
        const at = stderr.indexOf("memory-probe ");
        const end = stderr.indexOf("\n", at);
        if (at < 0 || end < 0) break;
        probes.push(JSON.parse(stderr.slice(at + 13, end)) as MemoryUsage);
        stderr = stderr.slice(0, at) + stderr.slice(end + 1);
      }
    });
    const gatewayPid = gateway.pid ?? 0;
    for (let i = 0; ; i++) {
      if (gateway.exitCode !== null) throw new Error(`gateway exited:\n${stderr}`);
      if (await isReady(`http://127.0.0.1:${adminPort}`)) break;
      if (i > 300) throw new Error(`gateway not ready:\n${stderr}`);
      await sleep(100);
    }

    const proxyAuthorization = `Basic ${Buffer.from(`session:${cp.token}`).toString("base64")}`;
    const open = () => openTunnel(proxyPort, authority, proxyAuthorization, gatewayCa.certPem);
    const samples: Sample[] = [];
    const sample = async (phase: string) => {
      const count = probes.length;
      gateway.kill("SIGUSR2");
      while (probes.length === count) await sleep(20);
      const usage = probes[count] as MemoryUsage;
      const s = { phase, ...usage, fds: openFds(gatewayPid) };
      samples.push(s);
      console.log(
        `${phase.padEnd(22)} rss ${mb(s.rss)} MB  heapUsed ${mb(s.heapUsed)} MB  external ${mb(s.external)} MB  fds ${s.fds}`,
      );
      return s;
    };

    // Warm-up: the session verified, its plan, credential and leaf loaded, upstream pooled.
    await closeTunnels(await openTunnels(OPEN_CONCURRENCY, open));
    await sleep(500);
    const baseline = await sample("before");

    let held: Tunnel[] = [];
    const refresher = setInterval(() => {
      const now = Date.now();
      for (const tunnel of held) {
        if (!tunnel.busy && now - tunnel.lastUsed > REFRESH_MS) {
          request(tunnel, authority).catch(() => tunnel.socket.destroy());
        }
      }
    }, 1000);
    const rounds: { held: Sample; closed: Sample; settled: Sample; openSeconds: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const started = performance.now();
      held = [];
      await openTunnels(TUNNELS, open, held);
      const openSeconds = (performance.now() - started) / 1000;
      const stillOpen = held.filter((t) => !t.socket.destroyed).length;
      if (stillOpen !== TUNNELS) throw new Error(`${TUNNELS - stillOpen} tunnels closed early`);
      console.log(`round ${round}: ${TUNNELS} tunnels open in ${openSeconds.toFixed(1)} s`);
      const heldSample = await sample(`round ${round} held`);
      await closeTunnels(held);
      held = [];
      // The gateway sees each close asynchronously; wait until its descriptors are back.
      for (let i = 0; i < 100 && openFds(gatewayPid) > baseline.fds + 5; i++) await sleep(100);
      await sleep(1000);
      const closed = await sample(`round ${round} closed`);
      // Memory released late (timers, sockets finishing their close) shows in this second look.
      await sleep(10_000);
      const settled = await sample(`round ${round} closed +10 s`);
      rounds.push({ held: heldSample, closed, settled, openSeconds });
    }
    clearInterval(refresher);

    const perTunnelKb = (a: MemoryUsage, b: MemoryUsage, key: keyof MemoryUsage) =>
      Math.round(((a[key] - b[key]) / TUNNELS / 1024) * 10) / 10;
    const figures = {
      machine,
      tunnels: TUNNELS,
      samples,
      perTunnelKb: rounds.map(({ held: h, closed, settled }, i) => ({
        round: i + 1,
        heldRss: perTunnelKb(h, baseline, "rss"),
        heldHeapUsed: perTunnelKb(h, baseline, "heapUsed"),
        heldExternal: perTunnelKb(h, baseline, "external"),
        retainedAfterCloseRss: perTunnelKb(closed, baseline, "rss"),
        retainedAfterCloseHeapUsed: perTunnelKb(closed, baseline, "heapUsed"),
        retainedAfter10sRss: perTunnelKb(settled, baseline, "rss"),
        retainedAfter10sHeapUsed: perTunnelKb(settled, baseline, "heapUsed"),
      })),
      openSeconds: rounds.map((r) => r.openSeconds),
    };
    console.table(figures.perTunnelKb);
    writeJson(jsonFile, figures);
  } finally {
    for (const child of children) {
      if (child.exitCode === null) child.kill("SIGTERM");
    }
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1).padStart(6);
}

await main();
