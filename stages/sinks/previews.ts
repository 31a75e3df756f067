/**
 * `previews`: pictures of each evaluation. For every evaluated step it writes
 * `<dir>/step-N.png` (observed, model, truth of the first held-out clip) and attaches to the
 * evaluation PNG strips of the first clips (observed, mask, every method, truth) for the report.
 */
import { join } from 'node:path';
import type { ClipShape } from '../../pipeline/frame-batch.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import type { Stage } from '../../pipeline/stage.ts';
import type { EvaluatedStep, ModelEvaluation } from '../eval/evaluate-model.ts';
import { maskRow, stripPng, writeStrip } from './png-strip.ts';

export interface Picture {
  readonly caption: string;
  readonly png: Buffer;
}

/** An evaluated step whose evaluation, if any, carries its pictures. */
export type PicturedStep = Omit<EvaluatedStep, 'evaluation'> & { readonly evaluation?: ModelEvaluation & { readonly pictures: readonly Picture[] } };

const UNIT = [0, 1] as const;

/**
 * @example
 * evaluated.pipe(previews(join(runDir, 'previews'), shape))
 * @param clips how many held-out clips get a strip for the report. Default 4.
 */
export function previews(dir: string, shape: ClipShape, { clips = 4 }: { clips?: number } = {}): Stage<EvaluatedStep, PicturedStep> {
  return mapAsync(
    'previews',
    async (step: EvaluatedStep): Promise<PicturedStep> => {
      const e = step.evaluation;
      if (!e) return step as PicturedStep;
      const methods = [...e.outputs.keys()];
      const pictures = await Promise.all(
        e.clips.slice(0, clips).map(async (c, i) => {
          const rows = [{ pixels: c.observed, range: UNIT }, maskRow(c.mask), ...methods.map((m) => ({ pixels: e.outputs.get(m)![i]!, range: UNIT })), { pixels: c.truth, range: UNIT }];
          return { caption: `${c.id}: observed, mask, ${methods.join(', ')}, truth`, png: await stripPng(rows, shape) };
        }),
      );
      const first = e.clips[0]!;
      await writeStrip(join(dir, `step-${e.step}.png`), [{ pixels: first.observed, range: UNIT }, { pixels: e.outputs.get('model')![0]!, range: UNIT }, { pixels: first.truth, range: UNIT }], shape);
      return { ...step, evaluation: { ...e, pictures } };
    },
    { capacity: 1, describe: (s) => ({ index: s.record.step }) },
  );
}
