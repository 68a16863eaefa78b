export * from "./config-error";
export * from "./config-writer";
export * from "./development-config";
export { type EnvOverride, readEnvOverrides } from "./env-overrides";
export * from "./load-config";
export * from "./schema";
export * from "./service-process";
export * from "./setting-file";
