/** The occlusion processes by name, and the checks every command and graph goes through. */
import { UsageError } from '../../pipeline/errors.ts';
import type { ParamValues } from '../../pipeline/graph.ts';
import { clouds } from './clouds.ts';
import { maskVideo } from './mask-video.ts';
import { movingVerticalBar } from './moving-vertical-bar.ts';
import { occlusionOptions, type OcclusionProcess } from './process.ts';
import { raindrops } from './raindrops.ts';
import { removePixel } from './remove-pixel.ts';

export const OCCLUSIONS: ReadonlyMap<string, OcclusionProcess> = new Map<string, OcclusionProcess>(
  [raindrops, removePixel, movingVerticalBar, clouds, maskVideo].map((p) => [p.name, p as unknown as OcclusionProcess]),
);

/** The process called `name`; an unknown name is a UsageError listing the known ones. */
export function findOcclusion(name: string): OcclusionProcess {
  const process = OCCLUSIONS.get(name);
  if (!process) throw new UsageError(`unknown occlusion "${name}" (known: ${[...OCCLUSIONS.keys()].join(', ')})`);
  return process;
}

/** A process and its checked options (defaults filled in). */
export interface OcclusionChoice {
  readonly process: OcclusionProcess;
  readonly options: ParamValues<OcclusionProcess['options']>;
}

export function chooseOcclusion(name: string, given: Readonly<Record<string, unknown>> = {}): OcclusionChoice {
  const process = findOcclusion(name);
  return { process, options: occlusionOptions(process, given) };
}

export { clouds, maskVideo, movingVerticalBar, raindrops, removePixel };
export * from './process.ts';
