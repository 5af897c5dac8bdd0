/**
 * Schemas of the JSONL fine-tuning records: the single source of their runtime checks and types.
 * A line is either `{"prompt", "completion"}` or chat `{"messages": [{role, content}, ...]}`;
 * unknown keys are errors, so typos never silently drop data.
 */

import { z } from 'zod';

/** Chat roles the template knows (see chat-template.ts). */
export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;

/** A chat role. */
export type ChatRole = (typeof CHAT_ROLES)[number];

/** `{"prompt": string, "completion": string}`; loss is on the completion (+ eos). */
export const PromptCompletionRecordSchema = z.strictObject({
  prompt: z.string(),
  completion: z.string(),
});

/** One chat message. */
export const ChatMessageSchema = z.strictObject({
  role: z.enum(CHAT_ROLES),
  content: z.string(),
});

/** `{"messages": [...]}` with at least one assistant message; loss is on assistant content (+ eos). */
export const ChatRecordSchema = z.strictObject({
  messages: z
    .array(ChatMessageSchema)
    .min(1)
    .refine((ms) => ms.some((m) => m.role === 'assistant'), { error: 'needs at least one "assistant" message' }),
});

/** A prompt/completion record. */
export type PromptCompletionRecord = z.infer<typeof PromptCompletionRecordSchema>;
/** A chat message. */
export type ChatMessage = z.infer<typeof ChatMessageSchema>;
/** A chat record. */
export type ChatRecord = z.infer<typeof ChatRecordSchema>;
/** Any fine-tuning record. */
export type DataRecord = PromptCompletionRecord | ChatRecord;

/** True for chat records. */
export function isChatRecord(r: DataRecord): r is ChatRecord {
  return 'messages' in r;
}

/** Outcome of parsing one record: the record, or a one-line problem description. */
export type RecordResult = { readonly ok: true; readonly record: DataRecord } | { readonly ok: false; readonly problem: string };

/** Parse an already JSON-decoded value as a record; chat if it has a `messages` key. */
export function parseRecord(value: unknown): RecordResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problem: `line must be a JSON object, got ${describe(value)}` };
  }
  const schema = 'messages' in value ? ChatRecordSchema : PromptCompletionRecordSchema;
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, record: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, problem: issue === undefined ? 'invalid record' : formatIssue(issue, value) };
}

/** `"messages[1].role"` style path of a zod issue. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

function formatIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const where = `"${formatPath(issue.path)}"`;
  switch (issue.code) {
    case 'invalid_type':
      return valueAt(root, issue.path) === undefined
        ? `missing ${where}`
        : `${where} must be ${article(issue.expected)}, got ${describe(valueAt(root, issue.path))}`;
    case 'unrecognized_keys': {
      const keys = issue.keys.map((k) => `"${k}"`).join(', ');
      const noun = issue.keys.length === 1 ? 'key' : 'keys';
      return issue.path.length === 0 ? `unknown ${noun} ${keys}` : `unknown ${noun} ${keys} in ${where}`;
    }
    case 'invalid_value':
      return `${where} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return `${where} must not be empty`;
    default:
      return issue.path.length === 0 ? issue.message : `${where} ${issue.message}`;
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  return article(Array.isArray(v) ? 'array' : typeof v);
}

function article(noun: string): string {
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}
