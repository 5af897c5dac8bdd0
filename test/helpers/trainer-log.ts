// Reading a trainer's JSON log (logFormat json, as the operator configures workers).
import { z } from 'zod';

const ResumedSchema = z.object({ msg: z.literal('resumed'), step: z.number() });

/** The trainer's "resumed" lines in `log` (one per resume), with the step each resumed at. */
export function resumedLines(log: string): { step: number; line: string }[] {
  return log
    .split('\n')
    .filter((l) => l.includes('"msg":"resumed"'))
    .map((line) => ({ step: ResumedSchema.parse(JSON.parse(line)).step, line }));
}
