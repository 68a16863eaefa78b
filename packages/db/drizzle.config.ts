import { defineConfig } from "drizzle-kit";

// SQL migrations are generated into the repository's /migrations folder and never edited after
// they are published: change src/schema.ts, then run `pnpm --filter @keyway/db generate`.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/schema.ts",
  out: "../../migrations",
});
