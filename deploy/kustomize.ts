/**
 * Renders a kustomization the way `kubectl kustomize` does, for the parts Keyway's manifests use:
 * `resources` (files, and directories holding a kustomization), `namespace`, `images` (`newName`,
 * `newTag`) and `patches` holding JSON 6902 operations with a `target` (kind, and a name read as
 * an anchored regular expression, as kustomize reads it). Anything else in a kustomization is
 * refused, so a manifest using a feature this renderer lacks fails its test instead of being
 * rendered wrong. There is no kustomize on npm; this lets the tests check what would be applied.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

interface PatchOperation {
  op: "add" | "remove" | "replace";
  path: string;
  value?: unknown;
}

const KNOWN_FIELDS = new Set(["apiVersion", "kind", "resources", "namespace", "images", "patches"]);
/** Kinds without a namespace, which the `namespace` field leaves alone. */
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding"]);

export async function renderKustomization(dir: string): Promise<KubernetesObject[]> {
  const kustomization = asRecord(
    parseYaml(await readFile(join(dir, "kustomization.yaml"), "utf8")),
    `${dir}/kustomization.yaml`,
  );
  for (const field of Object.keys(kustomization)) {
    if (!KNOWN_FIELDS.has(field))
      throw new Error(`${dir}: unsupported kustomization field ${field}`);
  }
  const objects: KubernetesObject[] = [];
  for (const resource of asStrings(kustomization.resources ?? [], "resources")) {
    const path = join(dir, resource);
    if ((await stat(path)).isDirectory()) {
      objects.push(...(await renderKustomization(path)));
    } else {
      for (const document of parseAllDocuments(await readFile(path, "utf8"))) {
        if (document.errors.length > 0) throw new Error(`${path}: ${document.errors[0]?.message}`);
        const object = document.toJS() as unknown;
        if (object !== null) objects.push(asObject(object, path));
      }
    }
  }
  for (const entry of asArray(kustomization.patches ?? [], "patches")) {
    const patch = asRecord(entry, "patch");
    const target = asRecord(patch.target, "patch target");
    const operations = asArray(
      typeof patch.path === "string"
        ? parseYaml(await readFile(join(dir, patch.path), "utf8"))
        : parseYaml(String(patch.patch)),
      "patch operations",
    ) as PatchOperation[];
    const name = typeof target.name === "string" ? new RegExp(`^(?:${target.name})$`) : undefined;
    const matched = objects.filter(
      (o) =>
        (target.kind === undefined || o.kind === target.kind) &&
        (name === undefined || name.test(o.metadata.name)),
    );
    if (matched.length === 0) throw new Error(`${dir}: a patch matches nothing`);
    for (const object of matched) {
      for (const operation of operations) applyOperation(object, operation);
    }
  }
  if (typeof kustomization.namespace === "string") {
    for (const object of objects) {
      if (!CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = kustomization.namespace;
    }
  }
  for (const entry of asArray(kustomization.images ?? [], "images")) {
    const image = asRecord(entry, "image");
    for (const container of objects.flatMap(containersOf)) {
      const [repository, tag] = splitImage(container.image);
      if (repository !== image.name) continue;
      const newName = typeof image.newName === "string" ? image.newName : repository;
      const newTag = typeof image.newTag === "string" ? image.newTag : tag;
      container.image = newTag === undefined ? newName : `${newName}:${newTag}`;
    }
  }
  return objects;
}

/** The containers of a workload's pod template (none for other kinds). */
export function containersOf(object: KubernetesObject): { image: string; name: string }[] {
  const template = (object.spec as { template?: { spec?: { containers?: unknown[] } } } | undefined)
    ?.template;
  return (template?.spec?.containers ?? []) as { image: string; name: string }[];
}

function splitImage(image: string): [string, string | undefined] {
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, undefined];
}

/** RFC 6902 `add`, `remove` and `replace` on a JSON Pointer (`~1` is `/`, `~0` is `~`). */
function applyOperation(object: KubernetesObject, { op, path, value }: PatchOperation): void {
  const keys = path
    .split("/")
    .slice(1)
    .map((key) => key.replaceAll("~1", "/").replaceAll("~0", "~"));
  const last = keys.pop();
  if (last === undefined) throw new Error(`patch path ${path} names the whole object`);
  let parent: unknown = object;
  for (const key of keys) {
    parent = (parent as Record<string, unknown>)[key];
    if (typeof parent !== "object" || parent === null) {
      throw new Error(
        `patch path ${path} does not exist in ${object.kind} ${object.metadata.name}`,
      );
    }
  }
  const container = parent as Record<string, unknown> | unknown[];
  if (Array.isArray(container)) {
    const index = last === "-" ? container.length : Number(last);
    if (op === "add") container.splice(index, 0, value);
    else if (index >= container.length) throw new Error(`patch path ${path} does not exist`);
    else if (op === "remove") container.splice(index, 1);
    else container[index] = value;
    return;
  }
  if (op !== "add" && !Object.hasOwn(container, last)) {
    throw new Error(`patch path ${path} does not exist in ${object.kind} ${object.metadata.name}`);
  }
  if (op === "remove") delete container[last];
  else container[last] = value;
}

function asObject(value: unknown, where: string): KubernetesObject {
  const object = asRecord(value, where);
  const metadata = asRecord(object.metadata, `${where} metadata`);
  if (
    typeof object.apiVersion !== "string" ||
    typeof object.kind !== "string" ||
    typeof metadata.name !== "string"
  ) {
    throw new Error(`${where}: every object needs apiVersion, kind and metadata.name`);
  }
  return object as KubernetesObject;
}

function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${where}: expected a mapping`);
  }
  return value as Record<string, unknown>;
}

function asArray(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value;
}

function asStrings(value: unknown, where: string): string[] {
  const list = asArray(value, where);
  if (!list.every((item) => typeof item === "string")) throw new Error(`${where}: expected names`);
  return list as string[];
}
