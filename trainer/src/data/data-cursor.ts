/**
 * The data cursor: `{epoch, index}` names exactly the next example to draw, i.e. position `index`
 * of epoch `epoch`'s order (shuffle.ts). Stored in trainer-state.json; a run resumed from it draws
 * the same examples as the uninterrupted run. Normalised so that 0 ≤ index < dataset size.
 */

import { z } from 'zod';

/** Schema for a cursor read back from a checkpoint. */
export const DataCursorSchema = z.strictObject({
  epoch: z.number().int().nonnegative(),
  index: z.number().int().nonnegative(),
});

/** Position of the next example: epoch number and index into that epoch's order. */
export type DataCursor = Readonly<z.infer<typeof DataCursorSchema>>;

/** The cursor of a fresh run. */
export const START_CURSOR: DataCursor = Object.freeze({ epoch: 0, index: 0 });

/** The cursor `count` examples after `cursor` in a dataset of `n` examples (epochs roll over). */
export function advanceCursor(cursor: DataCursor, count: number, n: number): DataCursor {
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`dataset size must be positive, got ${n}`);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const flat = cursor.index + count;
  return { epoch: cursor.epoch + Math.floor(flat / n), index: flat % n };
}
