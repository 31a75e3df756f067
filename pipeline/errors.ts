/**
 * Typed errors of the framework. Each one renders as a single line a user can act on, and carries a
 * `tag` so that callers recover by kind (`err.tag === 'stage'`) rather than by message.
 */

/** What a stage does when processing one element fails. */
export type ErrorPolicy = 'fail' | 'skip';

export const ERROR_POLICIES: readonly ErrorPolicy[] = ['fail', 'skip'];

/**
 * Marks an element's error with how many items (clips) skipping the element loses, when that is
 * more than one: a corrupt video in a zip stands for every clip cut from it. Telemetry and the
 * skip count add that many.
 */
export function losing(cause: unknown, items: number): Error {
  const err = cause instanceof Error ? cause : new Error(String(cause));
  return Object.assign(err, { lost: items });
}

/** How many items skipping the element of this error loses (see {@link losing}); 1 unless marked. */
export function lostBy(cause: unknown): number {
  const lost = (cause as { lost?: unknown } | null)?.lost;
  return typeof lost === 'number' && lost >= 0 ? lost : 1;
}

/** Where in the data a failure happened: a clip id, a file, an entry of an archive, a byte offset. */
export interface ElementRef {
  readonly clip?: string;
  readonly file?: string;
  readonly entry?: string;
  readonly byteOffset?: number;
  /** Position of the element in the stage's input, when nothing better identifies it. */
  readonly index?: number;
}

export function describeElement(ref: ElementRef): string {
  const parts: string[] = [];
  if (ref.clip !== undefined) parts.push(`clip "${ref.clip}"`);
  if (ref.file !== undefined) parts.push(`file "${ref.file}"`);
  if (ref.entry !== undefined) parts.push(`entry "${ref.entry}"`);
  if (ref.byteOffset !== undefined) parts.push(`at byte ${ref.byteOffset}`);
  if (parts.length === 0 && ref.index !== undefined) parts.push(`element #${ref.index}`);
  return parts.join(' ');
}

function messageOf(cause: unknown): string {
  if (cause instanceof Error) return cause.message.split('\n')[0] ?? cause.name;
  return String(cause);
}

/** A failure inside a stage, naming the stage, the element and the cause. */
export class StageError extends Error {
  readonly tag = 'stage' as const;

  constructor(
    readonly stage: string,
    readonly element: ElementRef,
    override readonly cause: unknown,
  ) {
    const where = describeElement(element);
    super(`stage "${stage}"${where ? `, ${where}` : ''}: ${messageOf(cause)}`, { cause });
    this.name = 'StageError';
  }
}

/** A wrong argument or option: the CLI exits with code 2 and this one line. */
export class UsageError extends Error {
  readonly tag = 'usage' as const;

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The run was stopped from outside (SIGINT, SIGTERM, an abort signal). */
export class CancelledError extends Error {
  readonly tag = 'cancelled' as const;

  constructor(readonly reason: string) {
    super(`cancelled: ${reason}`);
    this.name = 'CancelledError';
  }
}

/** One line for the terminal, whatever was thrown. */
export function oneLine(err: unknown): string {
  return messageOf(err).replace(/\s+/g, ' ').trim();
}
