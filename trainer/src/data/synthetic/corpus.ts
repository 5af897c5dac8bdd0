/**
 * A plain-text pretraining corpus of the same distribution as the fine-tuning tasks: solved task
 * lines (prompt + completion) mixed with free-text lines built from the same names, items, numbers
 * and letters. Prompts in `exclude` (the held-out set) never appear, so a base model pretrained on
 * it learns the formats and some answers, but has not seen the evaluation problems.
 */

import { DataError } from '../../errors.js';
import { deriveSeed, Rng } from '../../rng.js';
import { drawProblem, type SyntheticTask } from './task.js';

/** What the corpus contains. */
export interface CorpusOptions {
  /** Number of documents. */
  readonly documents: number;
  /** Lines per document. */
  readonly linesPerDocument: number;
  /** Tasks whose solved problems appear (each task line picks one uniformly). */
  readonly tasks: readonly SyntheticTask[];
  /** Prompts that must not appear (held-out problems). */
  readonly exclude: ReadonlySet<string>;
  /** Fraction of lines that are free text instead of solved problems, in [0, 1]. */
  readonly freeTextRate: number;
}

const NAMES = ['Tom', 'Anna', 'Ben', 'Mia', 'Sam', 'Lea'] as const;
const ITEMS = ['apples', 'pears', 'coins', 'cards', 'books', 'shells'] as const;
const FREE_TEXT = [
  '{name} likes {item}.',
  '{name} counts {n} {item} on the table.',
  '{name} has {n} {item} at home and keeps them in a box.',
  'The letters {word} are written on the board.',
  '{name} reads the word {word} and smiles.',
  'There are {n} {item} in the basket.',
] as const;

/** Documents (lines joined by `\n`); document d is drawn from Rng(deriveSeed(seed, 'corpus', d)). */
export function generateCorpus(seed: number | bigint, options: CorpusOptions): string[] {
  const { documents, linesPerDocument, tasks, exclude, freeTextRate } = options;
  if (tasks.length === 0 && freeTextRate < 1) throw new RangeError('generateCorpus: no tasks given and freeTextRate < 1');
  const docs: string[] = [];
  for (let d = 0; d < documents; d++) {
    const rng = new Rng(deriveSeed(seed, 'corpus', d));
    const lines: string[] = [];
    for (let l = 0; l < linesPerDocument; l++) {
      lines.push(rng.nextFloat() < freeTextRate ? freeTextLine(rng) : solvedLine(rng, tasks, exclude));
    }
    docs.push(lines.join('\n'));
  }
  return docs;
}

function solvedLine(rng: Rng, tasks: readonly SyntheticTask[], exclude: ReadonlySet<string>): string {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const p = drawProblem(rng, tasks[rng.nextInt(tasks.length)]!);
    if (!exclude.has(p.prompt)) return p.prompt + p.completion;
  }
  throw new DataError('generateCorpus: every drawn problem is excluded; the held-out set covers the task');
}

function freeTextLine(rng: Rng): string {
  let word = '';
  const length = 2 + rng.nextInt(4);
  for (let i = 0; i < length; i++) word += String.fromCharCode(97 + rng.nextInt(8));
  return FREE_TEXT[rng.nextInt(FREE_TEXT.length)]!.replace('{name}', NAMES[rng.nextInt(NAMES.length)]!)
    .replace('{item}', ITEMS[rng.nextInt(ITEMS.length)]!)
    .replace('{n}', String(rng.nextInt(10)))
    .replace('{word}', word);
}
