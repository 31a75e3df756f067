/**
 * Parts of a read for workers (`Dataset.parts`), as consecutive index ranges over the read's
 * videos, sequences or clips: each part is the options `{ [from]: a, [until]: b }` added to the
 * read's own.
 */

/**
 * @param keys the dataset's option names for the first index and the index it stops before.
 * @returns the ranges [start, end) cut every `per`; none to cut: one part with no options of its
 *   own, which reads what the read's own options ask.
 */
export function rangeParts(keys: readonly [string, string], start: number, end: number, per: number): Array<Record<string, number>> {
  const [from, until] = keys;
  const parts: Array<Record<string, number>> = [];
  for (let at = start; at < end; at += per) parts.push({ [from]: at, [until]: Math.min(end, at + per) });
  return parts.length > 0 ? parts : [{}];
}
