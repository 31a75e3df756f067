/**
 * The `st-inpaint` command (yargs). The interface is stable (see the design): `graphs`, `run`, and
 * the commands later issues add. Exit codes: 0 done, 1 the run failed, 2 a wrong argument (with a
 * one-line reason naming it), 130 interrupted.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, statSync } from 'node:fs';
import { inpaintVideo } from '../stages/apply/inpaint-video.ts';
import yargs, { type Argv, type Options } from 'yargs';
import { CancelledError, StageError, UsageError, oneLine } from '../pipeline/errors.ts';
import { describeGraph, loadGraphFile, loadGraphs, parseOptionPairs, resolveParams, type GraphDefinition, type ParamSpec } from '../pipeline/graph.ts';
import { runGraph } from '../pipeline/runner.ts';
import { releaseBackend } from '../pipeline/backend.ts';
import { DATASETS } from '../datasets/index.ts';
import { OCCLUSIONS, findOcclusion } from '../stages/occlusion/index.ts';
import { exportDataset, frechetCommand, peek, previewOcclusion, type Io } from './commands.ts';
import { paperTableCommand } from './paper-table.ts';
import { applyFolder, distributedApply, distributedExport, runWorker } from './distributed.ts';
import { NATS_ARGS, natsOptionsOf } from '../pipeline/nats.ts';

export const GRAPHS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'graphs');

const looksLikePath = (s: string): boolean => /[\\/]/.test(s) || /\.(ts|mts|js|mjs)$/.test(s);

/** A graph by registry name or by the path of a user's graph file. */
export async function findGraph(nameOrPath: string, graphsDir = GRAPHS_DIR): Promise<GraphDefinition> {
  if (looksLikePath(nameOrPath)) return loadGraphFile(nameOrPath);
  const graphs = await loadGraphs(graphsDir);
  const graph = graphs.get(nameOrPath);
  if (!graph) throw new UsageError(`unknown graph "${nameOrPath}" (known: ${[...graphs.keys()].join(', ')}; see "st-inpaint graphs")`);
  return graph;
}

function yargsOption(spec: ParamSpec): Options {
  const base = { describe: spec.describe, default: spec.default, group: 'Graph options:' };
  if (spec.type === 'string' && spec.choices) return { ...base, type: 'string', choices: [...spec.choices] };
  return { ...base, type: spec.type };
}

/** The loaded graph's parameters as options of `run` and `describe`. */
function graphOptions<T>(y: Argv<T>, graph: GraphDefinition | undefined): Argv<T> {
  for (const [key, spec] of Object.entries(graph?.params ?? {})) y.option(key, yargsOption(spec));
  return y;
}

const occlusionArgs = {
  occlusion: { type: 'string', describe: `occlude the clips: ${[...OCCLUSIONS.keys()].join(', ')}` },
  'occlusion-option': { type: 'string', array: true, describe: 'an option of the occlusion process, key=value (repeatable)' },
  seed: { type: 'number', default: 0, describe: 'run seed: with the clip id it fixes each clip\'s mask' },
} as const satisfies Record<string, Options>;

/** `<dataset>` with `--source` and `--dataset-option`, as `peek` and `export` take them. */
function datasetArgs<T>(y: Argv<T>) {
  return y
    .positional('dataset', { type: 'string', demandOption: true, describe: `a dataset: ${[...DATASETS.keys()].join(', ')}` })
    .option('source', { type: 'string', describe: 'URL or path of the raw data (not needed for the embedded synthetic set)' })
    .option('dataset-option', { type: 'string', array: true, describe: 'a dataset option, key=value (repeatable)' })
    .option('on-error', { type: 'string', choices: ['fail', 'skip'] as const, default: 'fail', describe: 'a clip that cannot be read: stop with its name (fail), or drop it, log it and go on (skip)' })
    .options(occlusionArgs);
}

/** The parsed arguments `datasetArgs` declares, as the command functions take them. */
function datasetValues(args: { dataset: string; source?: string; seed: number; 'dataset-option'?: string[]; 'on-error'?: string; occlusion?: string; 'occlusion-option'?: string[] }) {
  return { dataset: args.dataset, source: args.source, seed: args.seed, datasetOptions: args['dataset-option'], onError: args['on-error'] === 'skip' ? ('skip' as const) : ('fail' as const), occlusion: args.occlusion, occlusionOptions: args['occlusion-option'] };
}

const stdio: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Runs the command line; resolves to the exit code. */
export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  // `run <graph>` takes the graph's parameters as options, so the graph is loaded before parsing.
  let graph: GraphDefinition | undefined;
  const runAt = argv.findIndex((a) => a === 'run' || a === 'describe');
  const graphArg = runAt >= 0 ? argv[runAt + 1] : undefined;
  let exitCode = 0;
  const fail = (code: number, message: string): void => {
    exitCode = code;
    io.err(`st-inpaint: ${message}`);
  };

  try {
    if (graphArg && !graphArg.startsWith('-')) graph = await findGraph(graphArg);

    const cli: Argv = yargs([...argv])
      .scriptName('st-inpaint')
      .usage('$0 <command> [options]\n\nUnsupervised spatiotemporal inpainting as a streaming dataflow.')
      .option('cache', { type: 'string', global: true, describe: 'folder for downloads kept between runs (default: $ST_INPAINT_CACHE, $XDG_CACHE_HOME/st-inpaint or ~/.cache/st-inpaint)' })
      .middleware((args) => {
        if (typeof args['cache'] === 'string' && args['cache']) process.env['ST_INPAINT_CACHE'] = args['cache'];
      })
      .command('graphs', 'List the named graphs, one line each', {}, async () => {
        const graphs = await loadGraphs(GRAPHS_DIR);
        const width = Math.max(...[...graphs.keys()].map((n) => n.length));
        for (const g of graphs.values()) io.out(`${g.name.padEnd(width)}  ${g.description}`);
      })
      .command(
        'run <graph>',
        'Run a named graph (or a graph file) and write runs/<graph>/<run-id>/',
        (y) => {
          y.positional('graph', { type: 'string', describe: 'a name from "st-inpaint graphs", or the path of a graph file' }).option('out', {
            type: 'string',
            default: 'runs',
            describe: 'folder that holds the runs',
          }).option('resume', { type: 'boolean', default: false, describe: 'continue the newest run of this graph from its last checkpoint (its parameters, except those given here)' })
            .options(NATS_ARGS)
            .option('distribute', { type: 'string', describe: "with --nats: the last stage of the dataset's chain; the chain runs on `st-inpaint worker` processes" })
            .option('distribute-chunk', { type: 'number', default: 16, describe: 'with --distribute: clips per chunk a worker sends' })
            .option('distribute-window', { type: 'number', default: 4, describe: 'with --distribute: chunks of a part stored ahead of this process at most' });
          graphOptions(y, graph);
          if (graph) y.epilogue(`${graph.name}: ${graph.description}`);
          return y;
        },
        async (args) => {
          if (!graph) throw new UsageError(`unknown graph "${String(args.graph)}"`);
          // On --resume only the options written on this command line override the earlier run's.
          const written = (k: string): boolean => argv.some((a) => a === `--${k}` || a.startsWith(`--${k}=`) || a === `--no-${k}`);
          const keys = Object.keys(graph.params).filter((k) => !args.resume || written(k));
          const given = Object.fromEntries(keys.map((k) => [k, args[k]]));
          const nats = natsOptionsOf(args);
          if (args.distribute && !nats) throw new UsageError('--distribute needs --nats URL');
          if (nats && !args.distribute) throw new UsageError("--nats: name the stage the workers run up to with --distribute (the last stage of the dataset's chain; `describe` lists them)");
          const distribute = nats && { nats, stage: args.distribute as string, chunk: args['distribute-chunk'] as number, window: args['distribute-window'] as number };
          const result = await runGraph(graph, given, { runsDir: args.out as string, log: io.err, resume: args.resume as boolean, ...(distribute && { distribute }) });
          io.out(`${graph.name}: ${result.records} records in ${(result.elapsedMs / 1000).toFixed(1)} s; run folder ${result.runDir}`);
        },
      )
      .command(
        'describe <graph>',
        'Print a graph\'s stage chain and the parameter count of each network at its settings',
        (y) => {
          y.positional('graph', { type: 'string', describe: 'a name from "st-inpaint graphs", or the path of a graph file' }).option('json', { type: 'boolean', default: false, describe: 'one JSON object' });
          return graphOptions(y, graph);
        },
        (args) => {
          if (!graph) throw new UsageError(`unknown graph "${String(args.graph)}"`);
          const params = resolveParams(graph, Object.fromEntries(Object.keys(graph.params).map((k) => [k, args[k]])));
          const description = describeGraph(graph, params);
          if (args.json) return io.out(JSON.stringify(description));
          io.out(`${graph.name}: ${graph.description}`);
          if (description.unbuilt) io.out(`stages: (not listed: ${description.unbuilt})`);
          for (const node of description.nodes) {
            const params = Object.entries(node.params).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
            io.out(`  ${node.inputs.length ? `${node.inputs.join(' + ')} → ` : ''}${node.name} (capacity ${node.capacity}${params.length ? `; ${params.join(', ')}` : ''})`);
          }
          for (const [net, n] of Object.entries(description.parameters ?? {})) io.out(`${net}: ${n.toLocaleString('en-US')} parameters`);
        },
      )
      .command(
        'peek <dataset>',
        'Stream the first clips of a dataset and print one line (or JSON object) per clip',
        (y) =>
          datasetArgs(y)
            .option('clips', { type: 'number', default: 5, describe: 'how many clips' })
            .option('json', { type: 'boolean', default: false, describe: 'one JSON object per line' }),
        async (args) => {
          await peek({ ...datasetValues(args), clips: args.clips, json: args.json }, io);
        },
      )
      .command(
        'preview-occlusion <occlusion>',
        'Draw a PNG strip (clean / mask / observed) of a synthetic clip under an occlusion process',
        (y) =>
          y
            .positional('occlusion', { type: 'string', demandOption: true, describe: `a process: ${[...OCCLUSIONS.keys()].join(', ')}` })
            .option('out', { type: 'string', demandOption: true, describe: 'the PNG file to write' })
            .option('seed', occlusionArgs.seed)
            .option('clip', { type: 'number', default: 0, describe: 'index of the synthetic clip' })
            .option('occlusion-option', occlusionArgs['occlusion-option'])
            .option('dataset-option', { type: 'string', array: true, describe: 'a synthetic-set option, key=value (size, frames, channels, shapes, seed)' }),
        async (args) => {
          await previewOcclusion(
            { occlusion: args.occlusion, out: args.out, seed: args.seed, clip: args.clip, datasetOptions: args['dataset-option'], occlusionOptions: args['occlusion-option'] },
            io,
          );
        },
      )
      .command(
        'export <dataset>',
        'Write a dataset\'s preprocessed clips (clean, and observed with masks) as Arrow IPC shards and a manifest',
        (y) =>
          datasetArgs(y)
            .option('out', { type: 'string', demandOption: true, describe: 'folder to write (must not hold an export yet)' })
            .option('shard-clips', { type: 'number', default: 64, describe: 'clips per shard file' })
            .option('runs', { type: 'string', default: 'runs', describe: 'folder for the run\'s metrics' })
            .options(NATS_ARGS)
            .option('part-clips', { type: 'number', default: 16, describe: 'with --nats: clips per work item' })
            .option('resume', { type: 'boolean', default: false, describe: 'with --nats: continue the job of an earlier coordinator of the same export' }),
        async (args) => {
          const base = { ...datasetValues(args), out: args.out, shardClips: args['shard-clips'], runs: args.runs };
          const nats = natsOptionsOf(args);
          if (nats) await distributedExport({ ...base, nats, partClips: args['part-clips'], resume: args.resume }, io);
          else await exportDataset(base, io);
        },
      )
      .command(
        'worker',
        'Take work items from NATS JetStream (export parts, videos to apply) until stopped: run as many as you like, on any machines',
        (y) =>
          y
            .options(NATS_ARGS)
            .demandOption('nats')
            .option('concurrency', { type: 'number', default: 1, describe: 'items worked on at once' })
            .option('backend', { type: 'string', describe: 'compute backend of apply items (default: the one the coordinator was given)' }),
        async (args) => {
          const stop = new AbortController();
          const onSignal = (signal: NodeJS.Signals): void => {
            io.err(`worker: ${signal}; finishing the items in hand`);
            stop.abort();
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          try {
            const done = await runWorker({ nats: natsOptionsOf(args)!, concurrency: args.concurrency, signal: stop.signal, ...(args.backend && { backend: args.backend }), log: io.err });
            io.out(`worker: ${done} items done`);
          } finally {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
        },
      )
      .command(
        'fid <a> <b>',
        "FID: Fréchet distance of Inception-v3 pool features of two folders of frames (images, and every frame of videos) or pytorch-fid .npz statistics",
        (y) =>
          y
            .positional('a', { type: 'string', demandOption: true, describe: 'a folder of images or videos, or a .npz with mu and sigma' })
            .positional('b', { type: 'string', demandOption: true, describe: 'a folder of images or videos, or a .npz with mu and sigma' })
            .option('model', { type: 'string', describe: 'a converted Inception-v3 tfjs graph model (folder or URL; see the README); needed for folders' })
            .option('json', { type: 'boolean', default: false, describe: 'print {"fid": …} as the last line' }),
        async (args) => {
          await frechetCommand('inception', { a: args.a, b: args.b, model: args.model, json: args.json }, io);
        },
      )
      .command(
        'fvd <a> <b>',
        'FVD: Fréchet distance of I3D logits of two folders of videos (each video\'s first --frames frames), or .npz statistics',
        (y) =>
          y
            .positional('a', { type: 'string', demandOption: true, describe: 'a folder of videos, or a .npz with mu and sigma' })
            .positional('b', { type: 'string', demandOption: true, describe: 'a folder of videos, or a .npz with mu and sigma' })
            .option('model', { type: 'string', describe: 'a converted I3D (Kinetics-400) tfjs graph model (folder or URL; see the README); needed for folders' })
            .option('frames', { type: 'number', default: 16, describe: 'frames of each video (padded by repeating the last)' })
            .option('json', { type: 'boolean', default: false, describe: 'print {"fvd": …} as the last line' }),
        async (args) => {
          await frechetCommand('i3d', { a: args.a, b: args.b, model: args.model, json: args.json, frames: args.frames }, io);
        },
      )
      .command(
        'apply',
        'Inpaint a video of any length with a trained model (constant memory), keeping visible pixels exactly',
        (y) =>
          y
            .option('checkpoint', { type: 'string', demandOption: true, describe: 'a run folder, its checkpoints/ folder, or one step-N/ folder' })
            .option('input', { type: 'string', demandOption: true, describe: 'the video to fill, or a folder of videos' })
            .option('output', { type: 'string', demandOption: true, describe: 'the video to write (.mkv, .avi: FFV1; .mp4: lossless H.264), or a folder (each video as NAME.mkv)' })
            .option('mask', { type: 'string', describe: 'a mask video of the same size, white = hidden' })
            .option('occlusion', { type: 'string', describe: `or draw holes over a clean input with a process: ${[...OCCLUSIONS.keys()].join(', ')} (then masked MAE and PSNR are printed)` })
            .option('occlusion-option', occlusionArgs['occlusion-option'])
            .option('seed', occlusionArgs.seed)
            .option('fill', { type: 'string', choices: ['white', 'black'], default: 'white', describe: 'what the model saw in holes during training (with --mask)' })
            .option('backend', { type: 'string', default: 'auto', describe: 'compute backend' })
            .option('json', { type: 'boolean', default: false, describe: 'print the summary as one JSON object' })
            .options(NATS_ARGS)
            .option('resume', { type: 'boolean', default: false, describe: 'with --nats: continue the job of an earlier coordinator of the same apply' }),
        async (args) => {
          const folder = existsSync(args.input) && statSync(args.input).isDirectory();
          const nats = natsOptionsOf(args);
          if (folder || nats) {
            if (!folder) throw new UsageError(`--nats: --input must be a folder of videos (one work item each), got the file ${args.input}`);
            if (args.mask) throw new UsageError('--mask: a folder of videos is filled under --occlusion (one mask video cannot fit them all)');
            const settings = {
              ...(args.occlusion && { occlusion: args.occlusion, occlusionOptions: parseOptionPairs(`occlusion "${args.occlusion}"`, findOcclusion(args.occlusion).options, (args['occlusion-option'] as string[] | undefined) ?? []) }),
              seed: args.seed as number,
              fill: args.fill as 'white' | 'black',
              backend: args.backend,
            };
            if (!args.occlusion) throw new UsageError('apply: a folder of videos needs --occlusion NAME');
            if (nats) await distributedApply({ checkpoint: args.checkpoint, input: args.input, output: args.output, settings, nats, resume: args.resume }, io);
            else await applyFolder({ checkpoint: args.checkpoint, input: args.input, output: args.output, settings }, io);
            return;
          }
          // Ctrl-C stops at the next frame; the partial output is removed.
          const interrupt = new AbortController();
          const onSignal = (signal: NodeJS.Signals): void => interrupt.abort(`interrupted by ${signal}`);
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          const summary = await inpaintVideo({
            signal: interrupt.signal,
            checkpoint: args.checkpoint,
            input: args.input,
            output: args.output,
            ...(args.mask ? { mask: args.mask } : {}),
            ...(args.occlusion ? { occlusion: args.occlusion, occlusionOptions: parseOptionPairs(`occlusion "${args.occlusion}"`, findOcclusion(args.occlusion).options, (args['occlusion-option'] as string[] | undefined) ?? []) } : {}),
            seed: args.seed as number,
            fill: args.fill as 'white' | 'black',
            backend: args.backend,
            log: io.err,
          }).finally(() => {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          });
          if (args.json) return io.out(JSON.stringify(summary));
          const metrics = summary.maskedMae === undefined ? '' : `; masked MAE ${summary.maskedMae.toFixed(4)}, PSNR ${summary.psnr!.toFixed(2)} dB against the clean input`;
          io.out(`${args.output}: ${summary.frames} frames of ${summary.width}×${summary.height} in ${summary.seconds.toFixed(1)} s${metrics}`);
        },
      )
      .command(
        'paper-table <runs..>',
        "The final evaluations of finished runs beside the paper's tables (FID, FVD, MAE, and the difference): Markdown printed, HTML written",
        (y) =>
          y
            .positional('runs', { type: 'string', array: true, demandOption: true, describe: 'run folders, or folders holding them (runs/, runs/<graph>/)' })
            .option('html', { type: 'string', default: 'paper-table.html', describe: 'where the HTML table is written' }),
        async (args) => {
          await paperTableCommand(args.runs as string[], args.html, io);
        },
      )
      .demandCommand(1, 'name a command: graphs, run, describe, peek, preview-occlusion, export, worker, fid, fvd, apply, paper-table')
      .strict()
      .help()
      .alias('help', 'h')
      .version(false)
      .wrap(Math.min(110, process.stdout.columns || 100))
      .fail((message, err) => {
        if (err) throw err;
        // yargs writes some messages over several lines ("Invalid values:" then the argument): one line, whole.
        throw new UsageError(message.split('\n').map((l) => l.trim()).filter(Boolean).join(' '));
      });
    await cli.parseAsync();
  } catch (thrown) {
    // A wrong setting found only once the graph runs (a backend that does not load), or Ctrl-C
    // seen inside a stage, arrives as that stage's error: it is still what it was.
    const err = thrown instanceof StageError && (thrown.cause instanceof UsageError || thrown.cause instanceof CancelledError) ? thrown.cause : thrown;
    if (err instanceof UsageError) fail(2, err.message);
    else if (err instanceof CancelledError) fail(130, `${err.reason}; the graph was torn down`);
    else fail(1, oneLine(err));
  } finally {
    // An open GPU device keeps the process alive.
    await releaseBackend();
  }
  return exitCode;
}
