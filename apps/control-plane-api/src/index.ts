export { type AppModules, createApp } from "./app";
export type { AppDeps, AppSettings } from "./deps";
export { apiModules } from "./modules";
export { type RunningControlPlane, startControlPlane } from "./server";
