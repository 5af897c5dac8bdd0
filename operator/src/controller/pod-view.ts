/**
 * The part of a worker Pod the controller reads, parsed from wire JSON at the informer boundary
 * (STYLE: parse where data enters). Loose objects: everything else is ignored.
 */
import { z } from 'zod';

const TerminatedSchema = z.looseObject({
  exitCode: z.number().int(),
  signal: z.number().int().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
});

const ContainerStatusSchema = z.looseObject({
  name: z.string(),
  state: z
    .looseObject({
      waiting: z.looseObject({ reason: z.string().optional(), message: z.string().optional() }).optional(),
      running: z.looseObject({}).optional(),
      terminated: TerminatedSchema.optional(),
    })
    .optional(),
});

/** A worker pod as the controller sees it. */
export const PodViewSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    deletionTimestamp: z.string().optional(),
    ownerReferences: z.array(z.looseObject({ uid: z.string(), kind: z.string(), controller: z.boolean().optional() })).optional(),
  }),
  status: z
    .looseObject({
      phase: z.string().optional(),
      reason: z.string().optional(),
      message: z.string().optional(),
      conditions: z.array(z.looseObject({ type: z.string(), status: z.string(), reason: z.string().optional(), message: z.string().optional() })).optional(),
      containerStatuses: z.array(ContainerStatusSchema).optional(),
    })
    .optional(),
});

/** A parsed worker pod. */
export type PodView = z.infer<typeof PodViewSchema>;
/** A container's terminated state. */
export type TerminatedState = z.infer<typeof TerminatedSchema>;

/** Metadata-only view of the other children (Service, ConfigMap). */
export const ChildViewSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    deletionTimestamp: z.string().optional(),
    ownerReferences: z.array(z.looseObject({ uid: z.string(), kind: z.string(), controller: z.boolean().optional() })).optional(),
  }),
});

/** A parsed Service or ConfigMap. */
export type ChildView = z.infer<typeof ChildViewSchema>;
