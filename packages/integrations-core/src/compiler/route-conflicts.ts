import type { EgressRoute } from "../plan/schema";
import { routesOverlap } from "../routes/route-matcher";

export interface RouteConflict {
  a: EgressRoute;
  b: EgressRoute;
  host: string;
}

/**
 * Pairs of routes that can match one request. Candidates are found per host by walking each
 * path prefix's ancestors (so the work grows with routes × depth, not routes²); the decision is
 * always made by the one matcher, `routesOverlap`.
 */
export function findRouteConflicts(routes: readonly EgressRoute[]): RouteConflict[] {
  const byHost = new Map<string, Map<string, EgressRoute[]>>();
  for (const route of routes) {
    for (const host of route.match.hosts) {
      let prefixes = byHost.get(host);
      if (!prefixes) {
        prefixes = new Map();
        byHost.set(host, prefixes);
      }
      for (const prefix of route.match.pathPrefixes ?? ["/"]) {
        const list = prefixes.get(prefix);
        if (list) list.push(route);
        else prefixes.set(prefix, [route]);
      }
    }
  }

  const conflicts: RouteConflict[] = [];
  const seen = new Set<string>();
  const consider = (a: EgressRoute, b: EgressRoute, host: string) => {
    if (a === b) return;
    const [first, second] = a.id < b.id ? [a, b] : [b, a];
    const key = `${first.id}\u0000${second.id}`;
    if (seen.has(key)) return;
    if (!routesOverlap(first.match, second.match)) return;
    seen.add(key);
    conflicts.push({ a: first, b: second, host });
  };
  for (const [host, prefixes] of byHost) {
    for (const [prefix, owners] of prefixes) {
      for (const ancestor of ancestorsOf(prefix)) {
        const others = prefixes.get(ancestor);
        if (!others) continue;
        for (const a of owners) for (const b of others) consider(a, b, host);
      }
    }
  }
  return conflicts.sort((x, y) =>
    x.a.id < y.a.id ? -1 : x.a.id > y.a.id ? 1 : x.b.id < y.b.id ? -1 : 1,
  );
}

/** `/a/b` → `/a/b`, `/a`, `/` (the prefix itself included). */
function* ancestorsOf(prefix: string): Generator<string> {
  let current = prefix;
  while (true) {
    yield current;
    if (current === "/") return;
    const cut = current.lastIndexOf("/");
    current = cut <= 0 ? "/" : current.slice(0, cut);
  }
}
