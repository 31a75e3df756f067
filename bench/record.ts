/** A bench run's figures, with the time, commit and machine, appended to `bench/results/<bench>.jsonl`. */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function recordFigures(bench: string, figures: object): void {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    // Figures of uncommitted code are marked as such.
    const changed = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (changed) commit += '+changes';
  } catch {
    // Not a git checkout: the figures still count.
  }
  appendFileSync(join(dir, `${bench}.jsonl`), `${JSON.stringify({ at: new Date().toISOString(), commit, cpus: availableParallelism(), cpu: cpus()[0]?.model ?? '', ...figures })}\n`);
}
