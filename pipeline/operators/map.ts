/**
 * `map`: a synchronous one-to-one stage; the bounded, metered, error-policed form of RxJS `map`.
 */
import type { Stage, StageOptions } from '../stage.ts';
import { mapCore } from './map-async.ts';

/**
 * @example
 * map('grayscale', (clip: Clip) => toGray(clip))
 * @param name stage name in telemetry and errors.
 * @param project the transformation; a throw is handled by the stage's `onError` policy.
 * @returns a stage that emits one result per input.
 */
export function map<In, Out>(name: string, project: (value: In, index: number) => Out, options: StageOptions<In> = {}): Stage<In, Out> {
  return mapCore(name, { sync: project }, options);
}
