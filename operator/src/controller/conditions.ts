/**
 * metav1.Condition helpers (apimachinery meta.SetStatusCondition semantics): lastTransitionTime
 * moves only when the status flips; setting an equal condition is not a change.
 */
import type { Condition, ConditionType } from '../api/index.js';

/** A condition to set (time and generation are added by setCondition). */
export interface ConditionInput {
  readonly type: ConditionType;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

/** The condition of `type`, if present. */
export function findCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** True when `type` is present with status True. */
export function isTrue(conditions: readonly Condition[] | undefined, type: ConditionType): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * Returns the list with `input` set (same order; appended when new) and whether anything changed.
 * `now` (RFC 3339) becomes lastTransitionTime only on a status flip.
 */
export function setCondition(
  conditions: readonly Condition[],
  input: ConditionInput,
  now: string,
  generation: number | undefined,
): { readonly conditions: Condition[]; readonly changed: boolean } {
  const old = conditions.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: old !== undefined && old.status === input.status ? old.lastTransitionTime : now,
    reason: input.reason,
    message: input.message.slice(0, 32_768),
  };
  const changed =
    old === undefined ||
    old.status !== next.status ||
    old.reason !== next.reason ||
    old.message !== next.message ||
    old.observedGeneration !== next.observedGeneration;
  if (!changed) return { conditions: [...conditions], changed: false };
  return { conditions: old === undefined ? [...conditions, next] : conditions.map((c) => (c.type === input.type ? next : c)), changed: true };
}
