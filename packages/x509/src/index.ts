export * from "./certificates";
