/**
 * The paper's published results (method.md §8), keyed by the graph that reproduces each row:
 * FID on frames, FVD on clips, masked MAE (SST in °C). `paper-table` sets a run's final
 * evaluation beside them.
 */

export interface PaperRow {
  /** The graph whose runs this row compares with. */
  readonly graph: string;
  /** Which method of the run's table: the model, or a baseline (DINEOF for SST). */
  readonly method: string;
  readonly section: 'main' | 'sst' | 'supervised' | 'ablation';
  readonly label: string;
  readonly fid: number;
  readonly fvd: number;
  readonly mae: number;
  /** MAE in the data's physical unit (SST: °C) rather than on [0, 1]. */
  readonly physical?: boolean;
}

const main = (dataset: string, title: string, cells: Record<'raindrops' | 'remove-pixel' | 'moving-bar', [number, number, number]>): PaperRow[] =>
  (Object.entries(cells) as Array<[string, [number, number, number]]>).map(([occlusion, [fid, fvd, mae]]) => ({ graph: `${dataset}-${occlusion}`, method: 'model', section: 'main', label: `${title}, ${occlusion}`, fid, fvd, mae }));

export const PAPER_RESULTS: readonly PaperRow[] = [
  ...main('faceforensics', 'FaceForensics++', { raindrops: [43.72, 1574.89, 0.0834], 'remove-pixel': [93.28, 1460.02, 0.0894], 'moving-bar': [19.12, 493.57, 0.1304] }),
  ...main('kth', 'KTH', { raindrops: [56.56, 2522.81, 0.038], 'remove-pixel': [56.16, 2639.24, 0.0429], 'moving-bar': [39.05, 588.94, 0.0711] }),
  ...main('bair', 'BAIR', { raindrops: [27.33, 1194.19, 0.0821], 'remove-pixel': [53.8, 2073.9, 0.0997], 'moving-bar': [11.55, 496.38, 0.1619] }),
  { graph: 'sst-clouds', method: 'model', section: 'sst', label: 'SST, clouds at LWP 70 (ours)', fid: 8.01, fvd: 40.76, mae: 0.0739, physical: true },
  { graph: 'sst-clouds', method: 'dineof', section: 'sst', label: 'SST, clouds at LWP 70, DINEOF', fid: 27.99, fvd: 323.61, mae: 0.1214, physical: true },
  { graph: 'faceforensics-raindrops-unpaired', method: 'model', section: 'supervised', label: 'FaceForensics++ raindrops, unpaired supervision', fid: 20.86, fvd: 575.08, mae: 0.0547 },
  { graph: 'faceforensics-raindrops-paired', method: 'model', section: 'supervised', label: 'FaceForensics++ raindrops, paired (L1 + adversarial)', fid: 22.17, fvd: 720.75, mae: 0.0555 },
  { graph: 'sst-clouds-recurrent', method: 'model', section: 'ablation', label: 'SST clouds, recurrent (ConvGRU, past frames only)', fid: 13.29, fvd: 67.37, mae: 0.096, physical: true },
  { graph: 'sst-clouds-static', method: 'model', section: 'ablation', label: 'SST clouds, static (2D generator, no D_s)', fid: 35.91, fvd: 279.78, mae: 0.1036, physical: true },
];

export const SECTION_TITLES: Readonly<Record<PaperRow['section'], string>> = {
  main: 'Unsupervised model, three datasets × three occlusions',
  sst: 'Sea-surface temperature under clouds (MAE in °C)',
  supervised: 'Supervised upper bounds',
  ablation: 'SST ablations (MAE in °C)',
};
