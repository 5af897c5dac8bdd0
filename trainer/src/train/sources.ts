/**
 * Resolving `trainData` / `evalData`: a JSONL file, or `synthetic:<task>[?option=value&…]` (e.g.
 * `synthetic:arithmetic?style=words&maxSteps=3`), whose held-out split is the default eval set.
 */
import { ConfigError } from '../errors.js';
import {
  type ChatMessage,
  type Dataset,
  type LocatedRecord,
  type SyntheticProblem,
  type SyntheticTask,
  type Tokenizer,
  buildDataset,
  loadJsonlDataset,
  parseSyntheticTask,
  readJsonl,
  splitTrainEval,
} from '../data/index.js';
import type { TrainerConfig } from '../../../contract/config.js';

/** A held-out item for exact-match evaluation: the prompt to generate from and the reference answer. */
export type EvalItem =
  | { readonly kind: 'prompt'; readonly prompt: string; readonly reference: string }
  | { readonly kind: 'chat'; readonly history: readonly ChatMessage[]; readonly reference: string };

/** Training and evaluation data of a run. */
export interface RunData {
  readonly train: Dataset;
  readonly eval: Dataset | undefined;
  readonly evalItems: readonly EvalItem[];
  readonly task: SyntheticTask | undefined;
}

/** Parse `synthetic:<kind>?k=v&…` into a task; undefined when `spec` is not synthetic. */
export function parseSyntheticSpec(spec: string, field: string): SyntheticTask | undefined {
  if (!spec.startsWith('synthetic:')) return undefined;
  const [kind = '', query = ''] = spec.slice('synthetic:'.length).split('?', 2);
  const options: Record<string, unknown> = {};
  for (const pair of query.split('&').filter((p) => p !== '')) {
    const [k = '', v = ''] = pair.split('=', 2);
    if (k === '') throw new ConfigError(`${field}: malformed option "${pair}" in ${spec}`);
    options[k] = v !== '' && Number.isFinite(Number(v)) ? Number(v) : v.includes(',') ? v.split(',') : v;
  }
  try {
    return parseSyntheticTask({ kind, options });
  } catch (e) {
    throw new ConfigError(`${field}: ${(e as Error).message} (in "${spec}")`, { cause: e });
  }
}

function records(problems: readonly SyntheticProblem[]): LocatedRecord[] {
  return problems.map((p, i) => ({ line: i + 1, record: { prompt: p.prompt, completion: p.completion } }));
}

function evalItemsOf(recs: readonly LocatedRecord[]): EvalItem[] {
  return recs.flatMap(({ record }): EvalItem[] => {
    if ('prompt' in record) return [{ kind: 'prompt', prompt: record.prompt, reference: record.completion }];
    const msgs = record.messages;
    const lastAssistant = msgs.map((m) => m.role).lastIndexOf('assistant');
    if (lastAssistant < 0) return [];
    return [{ kind: 'chat', history: msgs.slice(0, lastAssistant), reference: msgs[lastAssistant]!.content }];
  });
}

/** Load (or generate) the run's data with the config's tokenizer and sequence length. */
export async function loadRunData(c: TrainerConfig, tokenizer: Tokenizer): Promise<RunData> {
  const opts = { maxSeqLen: c.seqLen };
  const task = parseSyntheticSpec(c.trainData, 'trainData');
  let train: Dataset,
    evalRecs: LocatedRecord[] = [];
  if (task !== undefined) {
    const split = splitTrainEval(c.seed, task, { trainCount: c.syntheticTrainSize, evalCount: c.syntheticEvalSize });
    train = buildDataset(c.trainData, records(split.train), tokenizer, opts);
    if (c.evalData === undefined) evalRecs = records(split.eval);
  } else {
    train = await loadJsonlDataset(c.trainData, tokenizer, opts);
  }
  if (c.evalData !== undefined) {
    const evalTask = parseSyntheticSpec(c.evalData, 'evalData');
    if (evalTask !== undefined) {
      // A different task's held-out split (same seed scheme, so disjoint from that task's training split).
      evalRecs = records(splitTrainEval(c.seed, evalTask, { trainCount: 0, evalCount: c.syntheticEvalSize }).eval);
    } else {
      evalRecs = await readJsonl(c.evalData);
    }
  }
  const source = c.evalData ?? `${c.trainData} (held-out split)`;
  const evalSet = evalRecs.length > 0 ? buildDataset(source, evalRecs, tokenizer, opts) : undefined;
  return { train, eval: evalSet, evalItems: evalItemsOf(evalRecs).slice(0, c.evalExamples), task };
}
