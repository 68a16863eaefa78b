export type { WorkerDeps, WorkerSettings } from "./deps";
export { type JobRegistration, registerJobs, workerJobs } from "./register-jobs";
export { createWorker, type Worker } from "./worker";
