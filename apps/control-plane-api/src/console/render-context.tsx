/**
 * Keeps hono/jsx off `AsyncLocalStorage`. On its first render hono/jsx looks for
 * `AsyncLocalStorage` (through `process.getBuiltinModule`, else `process.mainModule.require`)
 * and, when it finds it, runs every render inside `AsyncLocalStorage.run` — so that
 * `useContext` still sees provided values after an `await` in an async component. On Node 20
 * the first `run` turns on promise hooks for the whole process, and every later await of every
 * request pays for them (≈ 2.6×; docs/benchmarks.md): one console page would do that to the API.
 * The console uses neither `useContext` nor async components, so hono/jsx's synchronous
 * fallback store renders it identically.
 *
 * `withoutAsyncContext` makes that first probe find nothing: it hides both lookups for one
 * synchronous render (nothing else runs meanwhile), and hono/jsx remembers the answer.
 * `request-deadline.integration.test.ts` renders a console page and fails should promise hooks
 * come on (a hono/jsx that probes differently, a render before this one).
 */
export function withoutAsyncContext(): void {
  const host = process as unknown as Record<string, unknown>;
  const hidden = ["getBuiltinModule", "mainModule"].map((name) => ({
    name,
    descriptor: Object.getOwnPropertyDescriptor(host, name),
  }));
  for (const { name } of hidden) {
    Object.defineProperty(host, name, { value: undefined, configurable: true, writable: true });
  }
  try {
    String(<span />);
  } finally {
    for (const { name, descriptor } of hidden) {
      if (descriptor === undefined) delete host[name];
      else Object.defineProperty(host, name, descriptor);
    }
  }
}
