import { createHash } from "node:crypto";
import {
  buildRouteIndex,
  type CompiledRuntimePlan,
  type EgressPolicy,
  type EgressRoute,
  type RouteIndex,
  type RouteMatch,
  routeHosts,
  routePathPrefixes,
} from "@keyway/integrations-core";
import { LruCache } from "./lru-cache";

/**
 * The plans of the sessions this gateway serves, in memory (SPEC §7 "Session": plans by digest,
 * immutable, LRU-cached; §11: per-request work does not grow with sessions or routes). Plans are
 * immutable by digest, so each is fetched once (single flight) and kept while memory allows: the
 * cache is bounded by approximate bytes (`gateway.caches.plans_mb`), never by a count, so a
 * gateway serving thousands of sandboxes keeps every plan in use and a tenant creating profile
 * versions without end only ever pushes out the least recently used plans.
 *
 * Each plan is kept in the gateway's own compact form: its routes and egress policy only (files,
 * processes and the rest are the sandbox's business), and what many plans have alike held once.
 * Profile versions of one profile, and profiles binding the same connections the same way,
 * compile to routes that differ only in their ids (and in their order, which follows the binding
 * ids): everything else of a route, and the route index, is a `PlanShape` shared by all such plans,
 * and a plan adds little more than its route ids. The budget counts each plan's own part and each
 * shape in use once.
 */

/** A route's position in its plan: what a shared route index finds. */
export interface RouteSlot {
  readonly match: RouteMatch;
  readonly position: number;
}

/** A session's plan as the gateway uses it. */
export interface SessionPlan {
  readonly digest: string;
  readonly egressPolicy: EgressPolicy | undefined;
  /** Finds route positions; shared by every plan of the same shape. */
  readonly index: RouteIndex<RouteSlot>;
  /** How many routes the plan has. */
  readonly routeCount: number;
  /**
   * The route at a position of `index`, with this plan's own ids: one object per route of the
   * cached plan (made on its first use), so state kept by route object is per plan and route.
   */
  route(position: number): EgressRoute;
}

/** Where plans come from: the control plane (`GET /internal/v1/plans/:digest`, verified). */
export interface PlanFetcher {
  fetchPlan(digest: string): Promise<CompiledRuntimePlan>;
}

export interface PlanCacheObserver {
  /** A plan was fetched from the control plane (or the fetch failed). */
  fetched(outcome: "ok" | "failed"): void;
}

export interface PlanCacheOptions {
  source: PlanFetcher;
  /** Approximate bytes of plans kept. Default 64 MiB. */
  maxBytes?: number;
  observer?: PlanCacheObserver;
}

export interface PlanCache {
  /** A plan in memory, without waiting; a hit makes it the most recently used. */
  cached(digest: string): SessionPlan | undefined;
  /** The plan, fetched when not in memory (one fetch per digest at a time). */
  load(digest: string): Promise<SessionPlan>;
  /** What the cache holds: plans, shapes, and their approximate bytes. */
  stats(): { plans: number; shapes: number; bytes: number };
}

/** Everything of a route but its ids, shared by every plan of one shape. */
type RouteTemplate = Omit<EgressRoute, "id" | "bindingId">;

interface PlanShape {
  /** SHA-256 of the templates' and policy's JSON (the JSON itself would double the shape). */
  readonly key: string;
  readonly templates: readonly RouteTemplate[];
  readonly egressPolicy: EgressPolicy | undefined;
  readonly index: RouteIndex<RouteSlot>;
  readonly bytes: number;
  /** Cached plans of this shape. */
  plans: number;
}

interface CachedPlan {
  readonly view: SessionPlan;
  readonly shape: PlanShape;
  /** Approximate bytes of the plan's own part (its route ids). */
  readonly bytes: number;
}

/**
 * A plan in memory: its shape, and its route ids as one JSON string (`[id, bindingId, …]` in the
 * shape's order). Thousands of plans of a few dozen routes each are mostly route ids; one string
 * per plan costs about half of one string per id, and most routes of most plans are never used
 * by the sessions on them, so their route objects are made on first use.
 */
class ShapedPlan implements SessionPlan {
  readonly #shape: PlanShape;
  readonly #ids: string;
  readonly #routes: (EgressRoute | undefined)[];

  constructor(
    readonly digest: string,
    shape: PlanShape,
    ids: string,
  ) {
    this.#shape = shape;
    this.#ids = ids;
    this.#routes = new Array(shape.templates.length);
  }

  get egressPolicy(): EgressPolicy | undefined {
    return this.#shape.egressPolicy;
  }

  get index(): RouteIndex<RouteSlot> {
    return this.#shape.index;
  }

  get routeCount(): number {
    return this.#routes.length;
  }

  route(position: number): EgressRoute {
    return this.#routes[position] ?? this.#makeRoute(position);
  }

  #makeRoute(position: number): EgressRoute {
    const template = this.#shape.templates[position];
    if (template === undefined) throw new RangeError(`no route at position ${position}`);
    const ids: unknown = JSON.parse(this.#ids);
    const id = Array.isArray(ids) ? ids[2 * position] : undefined;
    const bindingId = Array.isArray(ids) ? ids[2 * position + 1] : undefined;
    if (typeof id !== "string" || typeof bindingId !== "string") {
      throw new RangeError(`no route ids at position ${position}`);
    }
    // Every field but the ids is the shape's: one object per distinct value in memory.
    const route: EgressRoute = Object.freeze({
      id,
      bindingId,
      match: template.match,
      upstream: template.upstream,
      auth: template.auth,
      credential: template.credential,
      mcp: template.mcp,
    });
    this.#routes[position] = route;
    return route;
  }
}

/*
 * Approximate heap cost, fitted to V8's heap (`pnpm bench:plan-memory` measures it against this
 * estimate, which runs 7–28 % above it for 2 to 200 routes, alike or distinct): a plan's own part
 * is its route ids (one string) and its route array; a shape is its parsed templates (about 3
 * bytes of heap per byte of JSON) and its route index (about 600 bytes per host and prefix).
 */
const PLAN_OVERHEAD_BYTES = 320;
const SHAPE_OVERHEAD_BYTES = 300;
/** A slot of the plan's route array, and its share of route objects made on use. */
const ROUTE_SLOT_BYTES = 24;
const SHAPE_BYTES_PER_JSON_BYTE = 3;
const INDEX_BYTES_PER_ENTRY = 600;

function stringBytes(value: string): number {
  return 16 + value.length;
}

function indexEntries(templates: readonly RouteTemplate[]): number {
  let entries = 0;
  for (const { match } of templates) {
    entries += match.hosts.length * (match.pathPrefixes?.length ?? 1);
  }
  return entries;
}

function templateOf(route: EgressRoute): RouteTemplate {
  const { id: _id, bindingId: _bindingId, ...template } = route;
  return template;
}

/**
 * Whether two routes share a host and a path prefix: only then can the index's tie-break (the
 * earlier route wins) decide a request, and only then does route order matter.
 */
function hasTies(routes: readonly EgressRoute[]): boolean {
  const seen = new Set<string>();
  for (const { match } of routes) {
    for (const host of routeHosts(match)) {
      for (const prefix of routePathPrefixes(match)) {
        const key = `${host} ${prefix}`;
        if (seen.has(key)) return true;
        seen.add(key);
      }
    }
  }
  return false;
}

/**
 * The plan's routes in the order its shape keeps them: by their templates' JSON, so that plans
 * listing alike routes in another order share a shape; in plan order when routes tie.
 */
function shapeOrder(plan: CompiledRuntimePlan): { order: number[]; json: string[] } {
  const json = plan.routes.map((route) => JSON.stringify(templateOf(route)));
  const order = json.map((_, i) => i);
  if (!hasTies(plan.routes)) {
    order.sort((a, b) => (json[a]! < json[b]! ? -1 : json[a]! > json[b]! ? 1 : a - b));
  }
  return { order, json };
}

export function createPlanCache(options: PlanCacheOptions): PlanCache {
  const { source, observer } = options;
  /** Shapes of the cached plans, by their key. */
  const shapes = new Map<string, PlanShape>();
  let shapeBytes = 0;
  const plans = new LruCache<string, CachedPlan>({
    maxSize: options.maxBytes ?? 64 * 1024 * 1024,
    sizeOf: (entry) => entry.bytes,
    sharedSize: () => shapeBytes,
    onRemove(entry) {
      const { shape } = entry;
      shape.plans--;
      if (shape.plans === 0) {
        // Sessions and tunnels still holding a plan of this shape keep it alive; a plan of the
        // same shape fetched later gets a new one.
        shapes.delete(shape.key);
        shapeBytes -= shape.bytes;
      }
    },
  });
  const loading = new Map<string, Promise<SessionPlan>>();

  function shapeOf(plan: CompiledRuntimePlan, order: readonly number[], json: string[]): PlanShape {
    const hash = createHash("sha256");
    for (const i of order) hash.update(json[i]!).update("\n");
    hash.update(JSON.stringify(plan.egressPolicy ?? null));
    const key = hash.digest("base64");
    let shape = shapes.get(key);
    if (shape === undefined) {
      const templates = order.map((i) => templateOf(plan.routes[i]!));
      const jsonLength = json.reduce((total, text) => total + text.length, 0);
      shape = {
        key,
        templates,
        egressPolicy: plan.egressPolicy,
        index: buildRouteIndex(templates.map((t, position) => ({ match: t.match, position }))),
        bytes:
          SHAPE_OVERHEAD_BYTES +
          jsonLength * SHAPE_BYTES_PER_JSON_BYTE +
          indexEntries(templates) * INDEX_BYTES_PER_ENTRY,
        plans: 0,
      };
    }
    return shape;
  }

  function admit(digest: string, plan: CompiledRuntimePlan): SessionPlan {
    const { order, json } = shapeOrder(plan);
    const shape = shapeOf(plan, order, json);
    const ids = JSON.stringify(
      order.flatMap((i) => [plan.routes[i]!.id, plan.routes[i]!.bindingId]),
    );
    const bytes =
      PLAN_OVERHEAD_BYTES +
      stringBytes(digest) +
      stringBytes(ids) +
      ROUTE_SLOT_BYTES * plan.routes.length;
    const view = new ShapedPlan(digest, shape, ids);
    if (shape.plans++ === 0) {
      shapes.set(shape.key, shape);
      shapeBytes += shape.bytes;
    }
    plans.set(digest, { view, shape, bytes });
    return view;
  }

  return {
    cached(digest) {
      return plans.get(digest)?.view;
    },

    load(digest) {
      const cached = plans.get(digest);
      if (cached !== undefined) return Promise.resolve(cached.view);
      let pending = loading.get(digest);
      if (pending === undefined) {
        pending = source
          .fetchPlan(digest)
          .then(
            (plan) => {
              observer?.fetched("ok");
              return admit(digest, plan);
            },
            (error: unknown) => {
              observer?.fetched("failed");
              throw error;
            },
          )
          .finally(() => loading.delete(digest));
        loading.set(digest, pending);
      }
      return pending;
    },

    stats: () => ({ plans: plans.size, shapes: shapes.size, bytes: plans.totalSize + shapeBytes }),
  };
}
