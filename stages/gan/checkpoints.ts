/**
 * A training run's checkpoints: where they go, how often, how many are kept, and, for a resumed
 * run, the newest intact one it starts from. The graph reads `resumeFrom.position` to start its
 * data stream where that checkpoint left off (the same clips an uninterrupted run would see from
 * there); the training stage restores it.
 */
import { join } from 'node:path';
import { latestIntactCheckpoint, readCheckpointState } from '../../pipeline/checkpoint.ts';
import type { RunContext } from '../../pipeline/graph.ts';
import type { TrainerState } from './trainer.ts';

export interface CheckpointPlan {
  /** Folder of the checkpoints (`step-N/`). */
  readonly dir: string;
  /** A checkpoint every this many iterations (and at the end, and when the run is stopped). 0: only then. */
  readonly every: number;
  /** Checkpoints kept. */
  readonly keep: number;
  /** The checkpoint a resumed run restores, and the clips it had consumed; absent: start at step 0. */
  readonly resumeFrom?: { readonly path: string; readonly step: number; readonly position: number };
}

/**
 * @example
 * const saved = checkpoints(run, { every: 25 }); // runs/<graph>/<id>/checkpoints, 3 kept
 * @param run the run: its folder, and whether it resumes an earlier session.
 */
export function checkpoints(run: Pick<RunContext, 'runDir' | 'resume' | 'log'>, { every, keep = 3 }: { every: number; keep?: number }): CheckpointPlan {
  const dir = join(run.runDir, 'checkpoints');
  // A damaged newest checkpoint (a disk error, a copy cut short) gives way to the one before.
  const latest = run.resume ? latestIntactCheckpoint(dir, (path, reason) => run.log(`${reason}; resuming from an earlier checkpoint`)) : undefined;
  if (run.resume && !latest) run.log(`no checkpoint under ${dir}: starting from step 0`);
  const resumeFrom = latest && { ...latest, position: readCheckpointState<TrainerState>(latest.path).state.position };
  return { dir, every, keep, ...(resumeFrom && { resumeFrom }) };
}
