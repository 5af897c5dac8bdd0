/**
 * The operator's API package: names, constants, schemas and types of the GmtFineTune resource, and
 * the CRD generated from them. A hand-written export list keeps the surface small.
 */
export { API_VERSION, CATEGORIES, CRD_NAME, GROUP, KIND, LIST_KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION } from './group.js';
export {
  ANNOTATIONS,
  APP_NAME,
  CONDITION_TYPES,
  FIELD_MANAGER,
  LABELS,
  MANAGED_BY,
  PHASES,
  REASONS,
  RESTART_CAUSES,
  ROLES,
  START_FAILURE_REASONS,
  type ConditionType,
  type Phase,
  type Reason,
  type RestartCause,
} from './constants.js';
export {
  GmtFineTuneSpecSchema,
  type GmtFineTuneSpec,
  type GmtFineTuneSpecInput,
  ModelSchema,
  DatasetSchema,
  MethodSchema,
  OptimizerSchema,
  TrainingSchema,
  CheckpointSchema,
  CheckpointVolumeSchema,
  NatsSchema,
  RunPolicySchema,
  PodTemplateSchema,
  ResourcesSchema,
  TolerationSchema,
  MODEL_SOURCE_PATTERN,
  DATASET_SOURCE_PATTERN,
} from './spec.js';
export {
  GmtFineTuneStatusSchema,
  type GmtFineTuneStatus,
  ConditionSchema,
  type Condition,
  RestartsSchema,
  WorkerCountsSchema,
  computeProgress,
  EvaluationSchema,
  EvalResultSchema,
  DisplaySchema,
  computeDisplay,
  formatForDisplay,
} from './status.js';
export {
  GmtFineTuneSchema,
  type GmtFineTune,
  type GmtFineTuneInput,
  ObjectMetaSchema,
  parseGmtFineTune,
  type ParseResult,
  MAX_NAME_LENGTH,
  ROOT_RULES,
} from './resource.js';
export { computeTrainerConfig, type TrainerConfigInput } from './trainer-config.js';
export { WORKER_PATHS, claimMountPath, parsePvcSource, resolveSource, sourceClaims } from './sources.js';
export { buildCrd, buildResourceSchema, renderCrdYaml, CRD_PATH, PRINTER_COLUMNS } from './crd.js';
export { toStructuralSchema, SchemaConversionError, type OpenApiSchema, type JsonValue } from './openapi.js';
export { cel, type CelRule, QuantitySchema, QUANTITY_PATTERN, DnsSubdomainSchema } from './k8s-schema.js';
