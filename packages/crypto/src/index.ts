export * from "./clock";
export * from "./field-encryption";
export * from "./gateway-assertions";
export * from "./key-ring";
export * from "./session-tokens";
export * from "./signing-keys";
export * from "./tokens";
