/**
 * The deployment files as they would be applied: every object of the kustomize base and overlay
 * (rendered by `kustomize.ts`) against the Kubernetes OpenAPI schemas (kubernetes-models), the
 * selectors of NetworkPolicies, Services and PodDisruptionBudgets against the pods they mean, the
 * environment of every container loaded by the real config loader, and compose.yaml against the
 * Compose specification (dclint: its schema, then its error-level rules).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type KeywayConfig,
  loadConfig,
  requireSetting,
  writeDevelopmentConfig,
} from "@keyway/config";
import {
  exportPrivateKeyPem,
  generateMasterKey,
  generateSigningKeyPair,
  hashToken,
} from "@keyway/crypto";
import { DCLinter } from "dclint";
import { Deployment } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { SERVICE_NODE_FLAGS } from "../scripts/build";
import { containersOf, type KubernetesObject, renderKustomization } from "./kustomize";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const KUSTOMIZATIONS = ["deploy/kubernetes/base", "deploy/kubernetes/overlays/development"];
const SANDBOX_LABELS = { "keyway.dev/role": "sandbox" };
const DEPLOYED_SERVICES = [
  "control-plane-api",
  "control-plane-worker",
  "data-plane-gateway",
] as const;

/** `NODE_OPTIONS` as a manifest must set it for `service`: its flags, or unset when it has none. */
function nodeOptionsOf(service: (typeof DEPLOYED_SERVICES)[number]): string | undefined {
  const flags = SERVICE_NODE_FLAGS[service];
  return flags.length === 0 ? undefined : flags.join(" ");
}

/** Validators of the kinds Keyway ships; another kind fails the test until it is added here. */
const MODELS: Record<string, (data: object) => { validate(): void }> = {
  "apps/v1 Deployment": (data) => new Deployment(data as never),
  "v1 Service": (data) => new Service(data as never),
  "v1 ConfigMap": (data) => new ConfigMap(data as never),
  "policy/v1 PodDisruptionBudget": (data) => new PodDisruptionBudget(data as never),
  "networking.k8s.io/v1 NetworkPolicy": (data) => new NetworkPolicy(data as never),
};

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}
interface Port {
  name?: string;
  containerPort: number;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: Port[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  volumes?: {
    name: string;
    secret?: { secretName: string; items?: { key: string; path: string }[] };
  }[];
}
interface DeploymentSpec {
  replicas: number;
  selector: LabelSelector;
  template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
}
interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}
interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: { port: number }[];
}
interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes: string[];
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}

function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  // Keyway's selectors use matchLabels only: expressions would need their own evaluation here.
  if (selector.matchExpressions !== undefined) throw new Error("matchExpressions not evaluated");
  return Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
}

/**
 * Values for every Secret key the manifests reference, in the form docs/operations.md tells the
 * operator to store them: a reference to a key missing here fails the test.
 */
async function secretFixtures(): Promise<Record<string, string>> {
  const session = await generateSigningKeyPair();
  const gateway = await generateSigningKeyPair();
  return {
    "keyway-secrets/database-url": "postgres://keyway:pw@postgres.example:5432/keyway",
    "keyway-secrets/master-keys": JSON.stringify({
      current: 1,
      keys: [{ version: 1, key: generateMasterKey() }],
    }),
    "keyway-secrets/session-signing-keys": JSON.stringify({
      current_kid: session.kid,
      keys: [{ kid: session.kid, private_key: await exportPrivateKeyPem(session.privateJwk) }],
    }),
    "keyway-secrets/operator-token-hashes": JSON.stringify([hashToken("operator-token")]),
    "keyway-secrets/internal-gateways": JSON.stringify([
      { id: "gateway", public_jwk: gateway.publicJwk },
    ]),
    "keyway-secrets/gateway-private-key": await exportPrivateKeyPem(gateway.privateJwk),
  };
}

describe.each(KUSTOMIZATIONS)("kustomization %s", (kustomization) => {
  let objects: KubernetesObject[];
  let secrets: Record<string, string>;
  let emptyDir: string;
  beforeAll(async () => {
    objects = await renderKustomization(join(root, kustomization));
    secrets = await secretFixtures();
    // No keyway.toml here: the services are configured by their environment alone.
    emptyDir = await mkdtemp(join(tmpdir(), "keyway-manifests-"));
  });
  afterAll(() => rm(emptyDir, { recursive: true, force: true }));

  const deployments = () => objects.filter((o) => o.kind === "Deployment");
  const deployment = (name: string) => {
    const found = deployments().find((o) => o.metadata.name === name);
    if (found === undefined) throw new Error(`no Deployment ${name}`);
    return found.spec as DeploymentSpec;
  };
  const ofKind = <T>(kind: string) =>
    objects
      .filter((o) => o.kind === kind)
      .map((o) => ({ name: o.metadata.name, spec: o.spec as T }));

  it("validates every object against the Kubernetes schemas", () => {
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      const model = MODELS[`${object.apiVersion} ${object.kind}`];
      if (model === undefined) throw new Error(`no schema for ${object.apiVersion} ${object.kind}`);
      expect(
        () => model(object).validate(),
        `${object.kind} ${object.metadata.name}`,
      ).not.toThrow();
    }
    expect(deployments().map((o) => o.metadata.name)).toEqual([
      "control-plane-api",
      "control-plane-worker",
      "data-plane-gateway",
    ]);
  });

  it("selects each Deployment's own pods, and no other Deployment's, with its selector", () => {
    for (const { name, spec } of ofKind<DeploymentSpec>("Deployment")) {
      for (const other of ofKind<DeploymentSpec>("Deployment")) {
        expect(selects(spec.selector, other.spec.template.metadata.labels), name).toBe(
          other.name === name,
        );
      }
    }
  });

  it("points Services and PodDisruptionBudgets at the pods of the Deployment of their name", () => {
    for (const { name, spec } of ofKind<{
      selector: Record<string, string>;
      ports: { targetPort: string }[];
    }>("Service")) {
      const pods = deployment(name).template;
      expect(selects({ matchLabels: spec.selector }, pods.metadata.labels), name).toBe(true);
      const portNames = pods.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
      for (const port of spec.ports) expect(portNames, name).toContain(port.targetPort);
    }
    const budgets = ofKind<{ selector: LabelSelector; minAvailable?: number }>(
      "PodDisruptionBudget",
    );
    expect(budgets.map((b) => b.name).sort()).toEqual(deployments().map((o) => o.metadata.name));
    for (const { name, spec } of budgets) {
      const { replicas, template } = deployment(name);
      expect(selects(spec.selector, template.metadata.labels), name).toBe(true);
      // A budget that keeps every replica up blocks every node drain.
      if (spec.minAvailable !== undefined) expect(spec.minAvailable, name).toBeLessThan(replicas);
    }
  });

  it("gives sandbox pods egress to the gateway's proxy port and DNS only", () => {
    const policies = ofKind<NetworkPolicySpec>("NetworkPolicy");
    const sandbox = policies.find((p) => selects(p.spec.podSelector, SANDBOX_LABELS));
    if (sandbox === undefined) throw new Error("no NetworkPolicy selects sandbox pods");
    expect(sandbox.spec.podSelector.matchLabels).toEqual(SANDBOX_LABELS);
    expect(sandbox.spec.policyTypes).toContain("Egress");
    // Keyway's own pods are not sandboxes.
    for (const { name, spec } of ofKind<DeploymentSpec>("Deployment")) {
      expect(selects(sandbox.spec.podSelector, spec.template.metadata.labels), name).toBe(false);
    }
    const gateway = deployment("data-plane-gateway").template;
    const proxyPort = gateway.spec.containers[0]?.ports?.find((p) => p.name === "proxy");
    const rules = sandbox.spec.egress ?? [];
    for (const rule of rules) {
      for (const peer of rule.to ?? []) {
        if (peer.namespaceSelector !== undefined) {
          // DNS: kube-system's resolver pods, port 53 only.
          expect(peer.namespaceSelector.matchLabels).toEqual({
            "kubernetes.io/metadata.name": "kube-system",
          });
          expect(rule.ports?.map((p) => p.port)).toEqual([53, 53]);
          continue;
        }
        // Any other peer selects the gateway's pods and nothing else of Keyway's.
        if (peer.podSelector === undefined) throw new Error("an egress peer without a selector");
        for (const { name, spec } of ofKind<DeploymentSpec>("Deployment")) {
          expect(selects(peer.podSelector, spec.template.metadata.labels), name).toBe(
            name === "data-plane-gateway",
          );
        }
        expect(rule.ports?.map((p) => p.port)).toEqual([proxyPort?.containerPort]);
      }
      // A rule without `to` (or without ports) would open everything.
      expect(rule.to?.length ?? 0).toBeGreaterThan(0);
      expect(rule.ports?.length ?? 0).toBeGreaterThan(0);
    }
  });

  it("gives every Deployment a NetworkPolicy of its name that selects its pods", () => {
    const policies = ofKind<NetworkPolicySpec>("NetworkPolicy");
    for (const { name, spec } of ofKind<DeploymentSpec>("Deployment")) {
      const policy = policies.find((p) => p.name === name);
      if (policy === undefined) throw new Error(`no NetworkPolicy for ${name}`);
      for (const other of ofKind<DeploymentSpec>("Deployment")) {
        expect(selects(policy.spec.podSelector, other.spec.template.metadata.labels), name).toBe(
          other.name === name,
        );
      }
      expect(spec.template.metadata.labels["keyway.dev/role"]).toBeUndefined();
    }
    // The gateway's proxy port takes sandbox pods, as labelled for sandbox-egress.
    const gateway = policies.find((p) => p.name === "data-plane-gateway");
    const proxyRule = gateway?.spec.ingress?.find((r) => r.ports?.some((p) => p.port === 8081));
    expect(proxyRule?.from).toEqual([{ podSelector: { matchLabels: SANDBOX_LABELS } }]);
  });

  /** The config each service's container would load, secrets filled from the fixtures. */
  async function containerConfig(name: string): Promise<KeywayConfig> {
    const container = deployment(name).template.spec.containers[0];
    if (container === undefined) throw new Error(`${name} has no container`);
    const env: Record<string, string> = {};
    for (const source of container.envFrom ?? []) {
      const configMap = objects.find(
        (o) => o.kind === "ConfigMap" && o.metadata.name === source.configMapRef?.name,
      );
      if (configMap === undefined) throw new Error(`${name}: no ConfigMap for its envFrom`);
      Object.assign(env, configMap.data);
    }
    for (const variable of container.env ?? []) {
      const ref = variable.valueFrom?.secretKeyRef;
      const value = ref === undefined ? variable.value : secrets[`${ref.name}/${ref.key}`];
      if (value === undefined) throw new Error(`${name}: no value for ${variable.name}`);
      env[variable.name] = value;
    }
    // Only KEYWAY_* overrides configure Keyway: any other name would be ignored by the service.
    // NODE_OPTIONS carries the service's node flags (checked against SERVICE_NODE_FLAGS below).
    for (const key of Object.keys(env)) {
      if (key !== "NODE_OPTIONS") expect(key, name).toMatch(/^KEYWAY_[A-Z0-9_]+__/);
    }
    expect(container.args).toEqual([name]);
    return loadConfig({ env, cwd: emptyDir });
  }

  /** Keys of each Secret that volumes may project, as the operator creates them. */
  const SECRET_FILES: Record<string, string[]> = { "keyway-gateway-ca": ["tls.crt", "tls.key"] };

  /** The files a Deployment's container can read from Secret volumes: path → `secret/key`. */
  function secretFiles(name: string): Map<string, string> {
    const pod = deployment(name).template.spec;
    const files = new Map<string, string>();
    for (const mount of pod.containers[0]?.volumeMounts ?? []) {
      const secret = pod.volumes?.find((v) => v.name === mount.name)?.secret;
      if (secret === undefined) continue;
      const keys = SECRET_FILES[secret.secretName];
      if (keys === undefined) throw new Error(`${name}: unknown Secret ${secret.secretName}`);
      const items = secret.items ?? keys.map((key) => ({ key, path: key }));
      for (const item of items) {
        expect(keys, `${name}: ${secret.secretName}`).toContain(item.key);
        files.set(`${mount.mountPath}/${item.path}`, `${secret.secretName}/${item.key}`);
      }
    }
    return files;
  }

  function port(name: string, portName: string): number | undefined {
    const container = deployment(name).template.spec.containers[0];
    return container?.ports?.find((p) => p.name === portName)?.containerPort;
  }

  function expectHealthProbes(name: string, portName: string) {
    const container = deployment(name).template.spec.containers[0];
    expect(container?.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: portName });
    expect(container?.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: portName });
  }

  it("configures the API: external database, keys, listening where its Service sends", async () => {
    const config = await containerConfig("control-plane-api");
    expect(config.database.url).toBe(secrets["keyway-secrets/database-url"]);
    requireSetting(config.keys.master, "keys.master");
    requireSetting(config.keys.session_signing, "keys.session_signing");
    expect(config.operator.token_hashes).toHaveLength(1);
    expect(config.internal.gateways.map((g) => g.id)).toEqual(["gateway"]);
    expect(config.api.host).toBe("0.0.0.0");
    expect(config.api.port).toBe(port("control-plane-api", "http"));
    expectHealthProbes("control-plane-api", "http");
    // It reads the gateway CA's certificate at start (to hand to sandboxes), never its key.
    const files = secretFiles("control-plane-api");
    expect(files.get(config.gateway.ca_cert_path)).toBe("keyway-gateway-ca/tls.crt");
    expect([...files.values()]).toEqual(["keyway-gateway-ca/tls.crt"]);
  });

  it("configures the worker: external database and master keys", async () => {
    const config = await containerConfig("control-plane-worker");
    expect(config.database.url).toBe(secrets["keyway-secrets/database-url"]);
    requireSetting(config.keys.master, "keys.master");
    // It reads no file a setting names.
    expect(secretFiles("control-plane-worker").size).toBe(0);
    // Its one listener, /metrics and /healthz, where the liveness probe and Prometheus reach it.
    expect(config.worker.metrics_host).toBe("0.0.0.0");
    expect(config.worker.metrics_port).toBe(port("control-plane-worker", "metrics"));
    const container = deployment("control-plane-worker").template.spec.containers[0];
    expect(container?.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "metrics" });
  });

  it("configures the gateway: its identity trusted by the API, the CA mounted, no master keys", async () => {
    const config = await containerConfig("data-plane-gateway");
    const api = await containerConfig("control-plane-api");
    const identity = requireSetting(config.gateway.identity, "gateway.identity");
    expect(api.internal.gateways.map((g) => g.id)).toContain(identity.gateway_id);
    expect(config.keys.master).toBeUndefined();
    expect(config.keys.session_signing).toBeUndefined();
    expect(config.database.url).toBeUndefined();
    expect(config.gateway.host).toBe("0.0.0.0");
    expect(config.gateway.admin_host).toBe("0.0.0.0");
    expect(config.gateway.port).toBe(port("data-plane-gateway", "proxy"));
    expect(config.gateway.admin_port).toBe(port("data-plane-gateway", "admin"));
    expect(config.gateway.control_plane_url).toBe(
      `http://control-plane-api:${port("control-plane-api", "http")}`,
    );
    // The CA files are the keys of the keyway-gateway-ca Secret, mounted where the config says.
    const files = secretFiles("data-plane-gateway");
    expect(files.get(config.gateway.ca_cert_path)).toBe("keyway-gateway-ca/tls.crt");
    expect(files.get(config.gateway.ca_key_path)).toBe("keyway-gateway-ca/tls.key");
    expectHealthProbes("data-plane-gateway", "admin");
  });

  it("runs every container as non-root on a read-only root filesystem with a writable /tmp", () => {
    for (const object of deployments()) {
      const pod = (object.spec as DeploymentSpec).template.spec as PodSpec & {
        securityContext: { runAsNonRoot: boolean };
      };
      expect(pod.securityContext.runAsNonRoot, object.metadata.name).toBe(true);
      for (const container of containersOf(object) as (Container & {
        securityContext: { readOnlyRootFilesystem: boolean };
        resources: { requests: { memory: string }; limits: { memory: string } };
      })[]) {
        expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
        expect(container.volumeMounts?.map((m) => m.mountPath)).toContain("/tmp");
        expect(container.resources.requests.memory).toMatch(/^\d+Mi$/);
        expect(container.resources.limits.memory).toMatch(/^\d+Mi$/);
      }
    }
  });

  it("gives each service the node flags it runs with everywhere else (SERVICE_NODE_FLAGS)", () => {
    for (const service of DEPLOYED_SERVICES) {
      const container = deployment(service).template.spec.containers[0];
      const nodeOptions = container?.env?.find((e) => e.name === "NODE_OPTIONS")?.value;
      expect(nodeOptions, service).toBe(nodeOptionsOf(service));
    }
  });
});

describe("the development overlay", () => {
  it("runs one replica of each service in its namespace, on the dev image", async () => {
    const objects = await renderKustomization(join(root, "deploy/kubernetes/overlays/development"));
    for (const object of objects) expect(object.metadata.namespace).toBe("keyway-dev");
    for (const object of objects.filter((o) => o.kind === "Deployment")) {
      expect((object.spec as DeploymentSpec).replicas).toBe(1);
      expect(containersOf(object).map((c) => c.image)).toEqual(["keyway:dev"]);
    }
  });
});

describe("compose.yaml", () => {
  it("configures the services it runs, on the development state pnpm start writes", async () => {
    const compose = parseYaml(await readFile(join(root, "compose.yaml"), "utf8"), {
      merge: true,
    }) as { services: Record<string, { environment?: Record<string, string> }> };
    const state = await mkdtemp(join(tmpdir(), "keyway-compose-"));
    try {
      const { configPath } = await writeDevelopmentConfig({ dir: state });
      for (const service of DEPLOYED_SERVICES) {
        const environment = compose.services[service]?.environment ?? {};
        // `${NAME:-default}` as Compose substitutes it when NAME is unset.
        const env = Object.fromEntries(
          Object.entries(environment).map(([key, value]) => [
            key,
            String(value).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1"),
          ]),
        );
        expect(env.KEYWAY_CONFIG, service).toBe("/etc/keyway/keyway.toml");
        const config = await loadConfig({ env: { ...env, KEYWAY_CONFIG: configPath } });
        expect(config.database.url).toBe("postgres://keyway:keyway@postgres:5432/keyway");
        expect(config.api.host).toBe("0.0.0.0");
        expect(config.gateway.host).toBe("0.0.0.0");
        expect(config.gateway.admin_host).toBe("0.0.0.0");
        expect(config.gateway.control_plane_url).toBe(
          `http://control-plane-api:${config.api.port}`,
        );
        expect(environment.NODE_OPTIONS, service).toBe(nodeOptionsOf(service));
      }
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  });

  it("follows the Compose specification", () => {
    const linter = new DCLinter({ rules: {}, quiet: true, debug: false, exclude: [] });
    const [result] = linter.lintFiles([join(root, "compose.yaml")], false);
    const errors = result?.messages.filter((m) => m.type === "error") ?? [];
    expect(errors.map((e) => `${e.rule}: ${e.message}`)).toEqual([]);
    expect(result?.filePath).toContain("compose.yaml");
  });
});
