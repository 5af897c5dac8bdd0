/**
 * GmtFineTune spec (docs/architecture.md §5): the single source of truth for the TypeScript types, the
 * runtime check of objects read from the API server and the CRD's OpenAPI schema (crd.ts).
 *
 * Training settings reuse the trainer's own field schemas (contract/config.ts): same
 * enums, ranges and defaults, so the API server never accepts a value the trainer would reject.
 * CEL rules ride along as metadata; the ones that need no old object are mirrored by zod refinements.
 * Objects are non-strict (`z.object`): the API server already prunes unknown fields, and an older
 * operator must still read objects written under a newer schema.
 */
import { z } from 'zod';
import { TrainerConfigSchema } from '../../../contract/config.js';
import { cel, DnsSubdomainSchema, FreeFormObjectSchema, QuantitySchema, StringMapSchema } from './k8s-schema.js';

const T = TrainerConfigSchema.shape;

// ---- pods ------------------------------------------------------------------------------------------

/** core/v1 Toleration. */
export const TolerationSchema = z
  .object({
    key: z.string().max(316).optional().describe('Taint key; empty with operator Exists matches every taint.'),
    operator: z.enum(['Exists', 'Equal']).optional().describe('Exists or Equal (default Equal).'),
    value: z.string().max(63).optional().describe('Taint value for operator Equal.'),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional().describe('Taint effect to match; empty matches all.'),
    tolerationSeconds: z.number().int().optional().describe('How long a NoExecute taint is tolerated.'),
  })
  .meta(
    cel({
      rule: "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
      message: 'spec.podTemplate.tolerations[].value must be empty when operator is Exists',
      fieldPath: '.value',
    }),
  );

/** Compute resources of each worker container (core/v1 ResourceRequirements, without claims). */
export const ResourcesSchema = z
  .object({
    requests: z.record(z.string(), QuantitySchema).optional().describe('Minimum resources, e.g. cpu: "2", memory: 4Gi, nvidia.com/gpu: 1.'),
    limits: z.record(z.string(), QuantitySchema).optional().describe('Maximum resources; extended resources such as nvidia.com/gpu must be set here.'),
  })
  .meta(
    cel({
      // core/v1: extended resources cannot be overcommitted; a request without a limit fails pod validation.
      rule: "!has(self.requests) || !('nvidia.com/gpu' in self.requests) || (has(self.limits) && 'nvidia.com/gpu' in self.limits)",
      message: 'spec.resources.limits must set nvidia.com/gpu when spec.resources.requests does (GPUs cannot be overcommitted)',
      fieldPath: '.limits',
    }),
  )
  .refine((r) => r.requests?.['nvidia.com/gpu'] === undefined || r.limits?.['nvidia.com/gpu'] !== undefined, {
    path: ['limits'],
    error: 'must set nvidia.com/gpu when requests does',
  });

/** Overrides applied to every worker pod. */
export const PodTemplateSchema = z.object({
  labels: StringMapSchema.optional().describe('Extra labels on worker pods (e.g. kueue.x-k8s.io/queue-name is on the GmtFineTune itself).'),
  annotations: StringMapSchema.optional().describe('Extra annotations on worker pods.'),
  nodeSelector: StringMapSchema.optional().describe('Node labels a worker pod must match.'),
  tolerations: z.array(TolerationSchema).max(64).optional().describe('Taints the worker pods tolerate.'),
  affinity: FreeFormObjectSchema.optional().describe('core/v1 Affinity of the worker pods (validated on the pods).'),
  priorityClassName: DnsSubdomainSchema.optional().describe('PriorityClass of the worker pods.'),
  serviceAccountName: DnsSubdomainSchema.optional().describe('ServiceAccount the worker pods run as.'),
  terminationGracePeriodSeconds: z
    .number()
    .int()
    .min(0)
    .max(86_400)
    .optional()
    .describe('Grace period between SIGTERM and SIGKILL (time to finish a checkpoint).'),
});

// ---- what to train -----------------------------------------------------------------------------------

/** `bundled`, `none` (fresh init), an absolute path in the image, or pvc://<claim>/<path>. */
export const MODEL_SOURCE_PATTERN = /^(bundled|none|\/\S+|pvc:\/\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/\S*)$/;
/** `synthetic:<task>[?k=v&…]`, an absolute path to a JSONL file, or pvc://<claim>/<path>. */
export const DATASET_SOURCE_PATTERN = /^(synthetic:[a-z][a-z0-9-]*(\?\S*)?|\/\S+|pvc:\/\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/\S*)$/;

/** The base model. */
export const ModelSchema = z.object({
  source: z
    .string()
    .regex(MODEL_SOURCE_PATTERN, 'must be bundled, none, an absolute path or pvc://<claim>/<path>')
    .default('bundled')
    .describe('bundled (in the image), none (fresh init), an absolute path, or pvc://<claim>/<path> (a checkpoint dir or model.safetensors).'),
  preset: T.modelPreset,
  tokenizer: T.tokenizer,
});

/** The training and evaluation data. */
export const DatasetSchema = z.object({
  train: z
    .string()
    .regex(DATASET_SOURCE_PATTERN, 'must be synthetic:<task>, an absolute path or pvc://<claim>/<path>')
    .default('synthetic:arithmetic')
    .describe('synthetic:<task>[?option=value&…] (arithmetic, symbolic), an absolute JSONL path, or pvc://<claim>/<path>.'),
  eval: z
    .string()
    .regex(DATASET_SOURCE_PATTERN, 'must be synthetic:<task>, an absolute path or pvc://<claim>/<path>')
    .optional()
    .describe("Held-out data; default: the held-out split of train's synthetic task."),
  syntheticTrainSize: T.syntheticTrainSize,
  syntheticEvalSize: T.syntheticEvalSize,
});

/** The fine-tuning method (docs/architecture.md §2). */
export const MethodSchema = z.object({
  name: T.method,
  maskRatio: T.maskRatio,
  maskScope: T.maskScope,
  maskMode: T.maskMode,
  tieRule: T.tieRule,
  oneoffMode: T.oneoffMode,
});

/** Optimizer and learning-rate schedule. */
export const OptimizerSchema = z
  .object({
    name: T.optimizer,
    lr: T.lr,
    beta1: T.beta1,
    beta2: T.beta2,
    eps: T.eps,
    weightDecay: T.weightDecay,
    momentum: T.momentum,
    schedule: T.schedule,
    warmupRatio: T.warmupRatio,
    minLrRatio: T.minLrRatio,
    maxGradNorm: T.maxGradNorm,
  })
  // has(): the API server checks `default: {}` against the rules before nested defaults apply.
  .meta(
    cel({
      rule: "(has(self.name) && self.name == 'sgd') || !has(self.momentum) || self.momentum == 0.0",
      message: 'spec.optimizer.momentum applies to sgd only; set it to 0 for adamw',
      fieldPath: '.momentum',
    }),
  )
  .refine((o) => o.name === 'sgd' || o.momentum === 0, { path: ['momentum'], error: 'applies to sgd only; set it to 0 for adamw' });

/** Training length, batch sizes and evaluation. */
export const TrainingSchema = z.object({
  steps: T.steps,
  microBatchSize: T.microBatchSize,
  accumSteps: T.accumSteps,
  seqLen: T.seqLen,
  seed: T.seed,
  nonFinite: T.nonFinite,
  maxSkippedSteps: T.maxSkippedSteps,
  evalEvery: T.evalEvery,
  evalExamples: T.evalExamples,
  maxNewTokens: T.maxNewTokens,
});

// ---- where it runs ---------------------------------------------------------------------------------

/** The checkpoint volume: exactly one source. */
export const CheckpointVolumeSchema = z
  .object({
    emptyDir: z
      .object({
        medium: z.enum(['', 'Memory']).optional().describe('"" (node disk) or Memory (tmpfs).'),
        sizeLimit: QuantitySchema.optional().describe('Size limit of the emptyDir.'),
      })
      .optional()
      .describe('Pod-local storage: lost when the gang restarts (the pods are recreated).'),
    persistentVolumeClaim: z
      .object({
        claimName: DnsSubdomainSchema.describe('An existing PersistentVolumeClaim (ReadWriteMany for several workers).'),
      })
      .optional()
      .describe('A PersistentVolumeClaim: checkpoints survive restarts, so a gang restart resumes.'),
  })
  .meta(
    cel({
      rule: 'has(self.emptyDir) != has(self.persistentVolumeClaim)',
      message: 'spec.checkpoint.volume must set exactly one of emptyDir and persistentVolumeClaim',
    }),
  )
  .refine((v) => (v.emptyDir !== undefined) !== (v.persistentVolumeClaim !== undefined), {
    error: 'must set exactly one of emptyDir and persistentVolumeClaim',
  });

/** Checkpointing. */
export const CheckpointSchema = z.object({
  volume: CheckpointVolumeSchema.default({ emptyDir: {} }).describe('Where rank 0 writes step-NNNNNNNN/ checkpoints.'),
  interval: T.checkpointEvery,
  keep: T.keepCheckpoints,
});

/** The NATS server the workers' collectives use. */
export const NatsSchema = z.object({
  url: z
    .string()
    .max(1024)
    .regex(/^(nats|tls|ws|wss):\/\/\S+$/, 'must be a nats://, tls://, ws:// or wss:// URL')
    .optional()
    .describe("NATS URL; default: the operator's configured NATS."),
  credentialsSecret: z
    .object({
      name: DnsSubdomainSchema.describe('Secret in the job namespace.'),
      key: z.string().min(1).max(253).default('nats.creds').describe('Key of the credentials file in the Secret.'),
    })
    .optional()
    .describe('Secret holding a NATS credentials file, mounted into the workers.'),
});

/** Run policy, Kueue-compatible (runPolicy.suspend as in Kubeflow's v1 jobs). */
export const RunPolicySchema = z
  .object({
    suspend: z.boolean().default(false).describe('true: no worker runs (Kueue admits a job by setting it false); training resumes from the last checkpoint.'),
    backoffLimit: z.number().int().min(0).max(1000).default(3).describe('Gang restarts allowed before the job fails, >= 0.'),
    activeDeadlineSeconds: z.number().int().min(1).optional().describe('Running time after which the job fails (resets on resume).'),
    progressDeadlineSeconds: z.number().int().min(1).default(600).describe('No step progress for this long marks the job Stalled and restarts the gang.'),
    startupDeadlineSeconds: z
      .number()
      .int()
      .min(1)
      .default(600)
      .describe('Worker pods that cannot start (image pull errors, CreateContainerConfigError, Unschedulable) for this long fail the job with that reason.'),
    ttlSecondsAfterFinished: z.number().int().min(0).optional().describe('Delete the job this long after it finished, >= 0.'),
    managedBy: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z0-9.-]+\/[a-zA-Z0-9._-]+$/, 'must be a domain-prefixed path such as kueue.x-k8s.io/multikueue')
      .optional()
      .describe('Controller that reconciles this job (MultiKueue); default: this operator. Immutable.'),
  })
  .meta(
    cel({
      rule: 'has(self.managedBy) == has(oldSelf.managedBy) && (!has(self.managedBy) || self.managedBy == oldSelf.managedBy)',
      message: 'spec.runPolicy.managedBy is immutable',
      fieldPath: '.managedBy',
    }),
  );

// ---- the spec ----------------------------------------------------------------------------------------

/** Transition rules: what a running gang cannot change (its world size and its method define the run). */
const SPEC_RULES = cel(
  {
    rule: 'self.workers == oldSelf.workers || self.runPolicy.suspend || oldSelf.runPolicy.suspend',
    message: 'spec.workers is immutable unless the job is suspended (spec.runPolicy.suspend: true)',
    fieldPath: '.workers',
  },
  {
    rule: 'self.method == oldSelf.method || self.runPolicy.suspend || oldSelf.runPolicy.suspend',
    message: 'spec.method is immutable unless the job is suspended (spec.runPolicy.suspend: true)',
    fieldPath: '.method',
  },
);

/** The GmtFineTune spec. */
export const GmtFineTuneSpecSchema = z
  .object({
    workers: T.worldSize.describe('Data-parallel workers (world size), >= 1; immutable unless suspended.'),
    image: z.string().min(1).max(1024).regex(/^\S+$/, 'must not contain whitespace').describe('Trainer container image.'),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional().describe('Image pull policy of the workers.'),
    resources: ResourcesSchema.optional().describe('Resources of each worker container, e.g. limits: {nvidia.com/gpu: 1}.'),
    podTemplate: PodTemplateSchema.optional().describe('Overrides applied to every worker pod.'),
    model: ModelSchema.prefault({}).describe('Base model.'),
    dataset: DatasetSchema.prefault({}).describe('Training and evaluation data.'),
    method: MethodSchema.prefault({}).describe('Fine-tuning method; immutable unless suspended.'),
    optimizer: OptimizerSchema.prefault({}).describe('Optimizer and learning-rate schedule.'),
    training: TrainingSchema.prefault({}).describe('Training length and batch sizes.'),
    checkpoint: CheckpointSchema.prefault({}).describe('Checkpoint volume and interval.'),
    nats: NatsSchema.optional().describe('NATS server for the collectives.'),
    runPolicy: RunPolicySchema.prefault({}).describe('Restarts, deadlines, TTL and suspend.'),
  })
  .meta({
    ...SPEC_RULES,
    description:
      'The fine-tuning job: what to train (model, dataset, method, optimizer, training), where it runs (workers, image, resources, podTemplate, checkpoint, nats) and its run policy.',
  });

/** A resolved spec (defaults filled in). */
export type GmtFineTuneSpec = z.infer<typeof GmtFineTuneSpecSchema>;
/** A spec as written by a user (defaulted fields optional). */
export type GmtFineTuneSpecInput = z.input<typeof GmtFineTuneSpecSchema>;
