/**
 * Atomic JSONL writer for fine-tuning records: the file appears complete under its final name or
 * not at all (write a temporary sibling, fsync, rename — rename is atomic within a file system on
 * POSIX). Only the schema's fields are written, so whatever it writes, readJsonl reads back.
 */

import { open, rename, rm } from 'node:fs/promises';
import { isChatRecord, type DataRecord } from './records.js';

/** Write `records` one JSON object per line to `path`, replacing it atomically. */
export async function writeJsonl(path: string, records: readonly DataRecord[]): Promise<void> {
  const text = records.map((r) => JSON.stringify(pickFields(r)) + '\n').join('');
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function pickFields(r: DataRecord): DataRecord {
  if (isChatRecord(r)) return { messages: r.messages.map((m) => ({ role: m.role, content: m.content })) };
  return { prompt: r.prompt, completion: r.completion };
}
