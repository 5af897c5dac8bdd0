/** The data package's public API: tokenizers, JSONL records, examples, batching, synthetic tasks. */

export { TOKENIZER_NAMES, type Tokenizer, type TokenizerName } from './tokenizer.js';
export { ByteTokenizer } from './byte-tokenizer.js';
export { Gpt2BpeTokenizer } from './gpt2-bpe-tokenizer.js';
export { createTokenizer } from './create-tokenizer.js';

export {
  CHAT_ROLES,
  ChatRecordSchema,
  PromptCompletionRecordSchema,
  isChatRecord,
  parseRecord,
  type ChatMessage,
  type ChatRecord,
  type ChatRole,
  type DataRecord,
  type PromptCompletionRecord,
} from './records.js';
export { buildExample, type Example, type ExampleProblem, type ExampleResult, type Segment } from './example.js';
export { chatGenerationPrompt, chatHeader, renderChatSegments } from './chat-template.js';
export { encodeRecord, promptIds } from './encode-record.js';
export { readJsonl, type LocatedRecord } from './jsonl-reader.js';
export { writeJsonl } from './jsonl-writer.js';
export { buildDataset, loadJsonlDataset, type Dataset, type DatasetOptions, type OverlongPolicy } from './dataset.js';
export { datasetFingerprint } from './dataset-fingerprint.js';
export { encodeCorpus } from './encode-corpus.js';

export { epochOrder } from './shuffle.js';
export { DataCursorSchema, START_CURSOR, advanceCursor, type DataCursor } from './data-cursor.js';
export { buildBatch, exampleLossTokens, type Batch } from './batch.js';
export { nextBatch, takeExamples } from './batch-iterator.js';
export { globalBatchSize, globalBatchSlice, nextGlobalBatch, type GlobalBatchLayout } from './global-batch.js';

export { exactMatch, extractAnswer, generationDone, normalizeAnswer } from './answer.js';

export { buildProblem, type SyntheticProblem } from './synthetic/problem.js';
export { ArithmeticOptionsSchema, arithmeticProblem, type ArithmeticOptions } from './synthetic/arithmetic.js';
export { SYMBOLIC_OPS, SymbolicOptionsSchema, applySymbolicOp, symbolicProblem, type SymbolicOp, type SymbolicOptions } from './synthetic/symbolic.js';
export { SyntheticTaskSchema, drawProblem, generateProblems, parseSyntheticTask, type SyntheticTask, type SyntheticTaskInput } from './synthetic/task.js';
export { splitTrainEval, type SplitSizes, type TrainEvalSplit } from './synthetic/split.js';
export { generateCorpus, type CorpusOptions } from './synthetic/corpus.js';
