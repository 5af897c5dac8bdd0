/**
 * Kubernetes building blocks for the zod schemas: quantities, names, string maps, free-form objects
 * and CEL rules. What zod cannot check (CEL, list/map semantics) rides along as metadata keys that
 * the CRD converter (openapi.ts) copies into the OpenAPI schema unchanged.
 */
import { z } from 'zod';

/** One `x-kubernetes-validations` entry (apiextensions.k8s.io/v1 ValidationRule). */
export interface CelRule {
  /** CEL expression; `self` is the value the rule sits on, `oldSelf` the old value (transition rule). */
  readonly rule: string;
  /** Message returned when the rule is false; it names the field. */
  readonly message: string;
  /** Where to report the error, relative to the rule's node (e.g. `.workers`). */
  readonly fieldPath?: string;
  /** Error reason: `FieldValueInvalid` (default), `FieldValueForbidden`, `FieldValueRequired`, `FieldValueDuplicate`. */
  readonly reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** Metadata that attaches CEL rules to a schema node. */
export function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}

/** Kubernetes resource.Quantity text (k8s.io/apimachinery/pkg/api/resource: the CRD pattern kubebuilder emits). */
export const QUANTITY_PATTERN = /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

/** A resource quantity: an integer or a quantity string (`500m`, `2Gi`), int-or-string as in core/v1. */
export const QuantitySchema = z
  .union([z.number().int(), z.string().regex(QUANTITY_PATTERN, 'must be a Kubernetes quantity such as 500m, 2Gi or 1')])
  .meta({ 'x-kubernetes-int-or-string': true });

/** DNS-1123 subdomain (Secret, PVC, ServiceAccount, PriorityClass names). */
export const DnsSubdomainSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS-1123 subdomain (lowercase letters, digits, "-" and ".")');

/** A string → string map (labels, annotations, node selector). */
export const StringMapSchema = z.record(z.string(), z.string()).meta({ maxProperties: 64 });

/** A free-form object kept as given (e.g. core/v1 Affinity, validated by the API server on the pod). */
export const FreeFormObjectSchema = z.record(z.string(), z.unknown()).meta({ 'x-kubernetes-preserve-unknown-fields': true });

/** RFC 3339 time as metav1.Time serialises it. */
export const TimeSchema = z.iso.datetime({ offset: true });
