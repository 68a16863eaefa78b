export {
  createJobQueue,
  type EnqueueOptions,
  JOB_SCHEMA,
  type JobQueue,
  type JobQueueOptions,
} from "./job-queue";
export {
  githubRedeliveryQueue,
  QUEUES,
  type QueueDefinition,
  type QueuePayload,
  type QueueSettings,
  webhookDeliverQueue,
  webhookProcessQueue,
  webhookRetentionQueue,
} from "./queues";
export {
  clientExecutor,
  type PgBossSqlExecutor,
  sqlExecutor,
  toParameter,
  withParameters,
} from "./sql-executor";
