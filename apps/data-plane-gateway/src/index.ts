export * from "./control-plane-client";
export * from "./errors";
export * from "./gateway";
export * from "./gateway-from-config";
export * from "./invalidations";
