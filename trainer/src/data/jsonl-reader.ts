/**
 * Streaming reader of JSONL fine-tuning files. Blank lines are skipped; every other line must be a
 * valid record (records.ts). Problems raise DataError as `file:line: problem`, line numbers 1-based
 * and counting blank lines, so an editor's "go to line" lands on the culprit.
 */

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { DataError } from '../errors.js';
import { parseRecord, type DataRecord } from './records.js';

/** A record with the 1-based line it came from. */
export interface LocatedRecord {
  readonly line: number;
  readonly record: DataRecord;
}

/** All records of the JSONL file at `path`; DataError on the first bad line, an unreadable or empty file. */
export async function readJsonl(path: string): Promise<LocatedRecord[]> {
  const records: LocatedRecord[] = [];
  let line = 0;
  try {
    const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const raw of rl) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      records.push({ line, record: parseLine(path, line, text) });
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${path}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (records.length === 0) throw new DataError(`${path}: file contains no records`);
  return records;
}

function parseLine(path: string, line: number, text: string): DataRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${path}:${line}: invalid JSON (${(err as Error).message})`, { cause: err });
  }
  const parsed = parseRecord(value);
  if (!parsed.ok) throw new DataError(`${path}:${line}: ${parsed.problem}`);
  return parsed.record;
}
