export {
  createJobQueue,
  type EnqueueOptions,
  JOB_SCHEMA,
  type JobQueue,
  type JobQueueOptions,
} from "./job-queue";
export {
  configuredQueueSettings,
  githubRedeliveryQueue,
  oauth2RefreshQueue,
  QUEUES,
  type QueueDefinition,
  type QueuePayload,
  type QueueSettings,
  targetHealthQueue,
  webhookDeliverExpirySeconds,
  webhookDeliverQueue,
  webhookProcessExpirySeconds,
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
