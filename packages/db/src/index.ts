export * from "./client";
export * from "./ids";
export * from "./migrate";
export * as schema from "./schema";
export * from "./schema";
