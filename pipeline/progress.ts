/**
 * Showing telemetry to a person: on a terminal, a table of stages redrawn in place; otherwise one
 * plain line every few seconds (logs, CI); and a summary table at the end of a run.
 *
 * The redraw is a few ANSI escapes written here rather than a display library, because `pipeline/`
 * depends on rxjs, apache-arrow and tfjs alone.
 */
import { type Subscription } from 'rxjs';
import type { StageStats, Telemetry } from './telemetry.ts';

function human(n: number, unit = ''): string {
  const prefixes = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < prefixes.length - 1) {
    n /= 1000;
    i += 1;
  }
  const digits = n >= 100 || i === 0 ? 0 : 1;
  return `${n.toFixed(n < 10 && i === 0 ? (Number.isInteger(n) ? 0 : 1) : digits)}${prefixes[i]}${unit}`;
}

function formatMeasures(s: StageStats): string {
  return Object.entries(s.measures ?? {})
    .map(([k, m]) => `${k} ${m.mean.toFixed(3)} ± ${m.std.toFixed(3)}`)
    .join(', ');
}

/**
 * Rows of a fixed-width table: stage, items, items/s, bytes/s, queue, high water, blocked, skipped,
 * and the stage's own measurements (mean ± std) when any stage has some.
 */
export function formatStats(stats: readonly StageStats[]): string[] {
  const measured = stats.some((s) => s.measures);
  const header = ['stage', 'items', 'items/s', 'bytes/s', 'queue', 'high', 'blocked', 'skipped', ...(measured ? ['measured'] : [])];
  const rows = stats.map((s) => [
    s.stage,
    human(s.items),
    human(s.itemsPerSec),
    human(s.bytesPerSec, 'B'),
    `${s.inFlight}/${s.capacity}`,
    String(s.highWater),
    `${s.elapsedMs > 0 ? Math.round((100 * s.blockedMs) / s.elapsedMs) : 0}%`,
    String(s.skipped),
    ...(measured ? [formatMeasures(s)] : []),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const last = header.length - 1;
  const line = (r: string[]): string =>
    r.map((cell, c) => (c === 0 || (measured && c === last) ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** One line for logs: `[12s] source 1.2k it 98/s 4.1MB/s q 3/4 | ...`. */
export function formatLine(stats: readonly StageStats[], elapsedMs: number): string {
  const parts = stats.map((s) => `${s.stage} ${human(s.items)} it ${human(s.itemsPerSec)}/s${s.bytes ? ` ${human(s.bytesPerSec, 'B')}/s` : ''} q ${s.inFlight}/${s.capacity}${s.skipped ? ` skipped ${s.skipped}` : ''}${s.measures ? ` ${formatMeasures(s)}` : ''}`);
  return `[${Math.round(elapsedMs / 1000)}s] ${parts.join(' | ')}`;
}

export interface ProgressOptions {
  readonly stream?: NodeJS.WriteStream;
  /** Redraw period on a terminal. Default 250 ms. */
  readonly ttyIntervalMs?: number;
  /** Period of plain lines elsewhere. Default 10 s. */
  readonly lineIntervalMs?: number;
}

/** Starts showing the run's progress; unsubscribe to stop (the last table is left on screen). */
export function showProgress(telemetry: Telemetry, options: ProgressOptions = {}): Subscription {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const started = performance.now();
  let drawn = 0;
  const clear = (): void => {
    if (drawn > 0) stream.write(`\x1b[${drawn}F\x1b[0J`);
    drawn = 0;
  };
  const events = telemetry.events$.subscribe((e) => {
    if (tty) clear();
    stream.write(`${e.stage}: ${e.message}\n`);
  });
  const ticks = telemetry.stats$(tty ? (options.ttyIntervalMs ?? 250) : (options.lineIntervalMs ?? 10_000)).subscribe((stats) => {
    if (stats.length === 0) return;
    if (!tty) {
      if (performance.now() - started > 1) stream.write(`${formatLine(stats, performance.now() - started)}\n`);
      return;
    }
    clear();
    const rows = formatStats(stats);
    stream.write(`${rows.join('\n')}\n`);
    drawn = rows.length;
  });
  ticks.add(events);
  return ticks;
}
