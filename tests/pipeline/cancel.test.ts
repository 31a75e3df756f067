/**
 * Cancellation: unsubscribing, or SIGINT to the command, tears the whole graph down. No child
 * process survives, no temporary file is left, no handle stays open, and the command exits
 * non-zero with a one-line reason.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { writeArrow } from '../../pipeline/arrow-io.ts';
import { encodeFrameBatch, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { fromProcess } from '../../pipeline/operators/from-process.ts';
import { map } from '../../pipeline/operators/map.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';

const root = resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'st-cancel-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Pids of the live descendants of `pid` whose command line contains `marker`, from /proc. */
function descendants(pid: number, marker = WRITER_MARK): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z') parents.set(Number(entry), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const walk = (p: number): void => {
    for (const [child, parent] of parents) if (parent === p) found.push(child), walk(child);
  };
  walk(pid);
  return found.filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false;
    }
  });
}

function existsPid(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A child that writes at the pace its stdout is read and never exits on its own; it stops writing
 * after 32 MiB so that a failing test cannot fill the disk.
 */
const WRITER_MARK = 'st-inpaint-test-writer';
const ENDLESS_WRITER = `/*${WRITER_MARK}*/let n=0;const b=Buffer.alloc(65536,1);setInterval(()=>{},1e9);(function w(){while(n<512){n++;if(!process.stdout.write(b))return process.stdout.once('drain',w)}})()`;
const spec: FrameBatchSpec = { shape: { frames: 1, height: 256, width: 256, channels: 1 }, pixelType: 'uint8', range: [0, 255] };

describe('cancellation', () => {
  it('unsubscribing kills the child process, removes the partial file and closes every handle', async () => {
    const handlesBefore = process.getActiveResourcesInfo().length;
    const path = join(dir, 'out.arrow');
    let batches = 0;
    const subscription = fromProcess('endless', process.execPath, ['-e', ENDLESS_WRITER], { chunkBytes: 65536 })
      .pipe(
        map('to-batch', (chunk: Buffer, i) => encodeFrameBatch(spec, [{ id: `chunk-${i}`, frames: new Uint8Array(chunk) }])),
        writeArrow(path),
        unwrap(),
      )
      .subscribe({ next: () => (batches += 1) });
    try {
      for (let i = 0; i < 500 && batches < 5; i++) await sleep(10);
      assert.equal(descendants(process.pid).length, 1, 'one child process runs');
      assert.equal(readdirSync(dir).filter((f) => f.includes('.partial-')).length, 1, 'the partial file exists while writing');
    } finally {
      subscription.unsubscribe();
    }
    for (let i = 0; i < 100 && descendants(process.pid).length > 0; i++) await sleep(20);
    assert.deepEqual(descendants(process.pid), [], 'no child process left');
    assert.deepEqual(readdirSync(dir), [], 'neither a partial nor a final file');
    for (let i = 0; i < 100 && process.getActiveResourcesInfo().length > handlesBefore; i++) await sleep(20);
    assert.deepEqual(process.getActiveResourcesInfo().length, handlesBefore, `open handles: ${process.getActiveResourcesInfo().join(', ')}`);
  });

  it('SIGINT to the command tears the graph down and exits 130 with a one-line reason', async () => {
    // .mts: a graph file outside a package of "type": "module" must say it is a module.
    const graphFile = join(dir, 'endless-export.mts');
    writeFileSync(
      graphFile,
      `import { defineGraph } from ${JSON.stringify(join(root, 'pipeline/graph.ts'))};
import { writeArrow } from ${JSON.stringify(join(root, 'pipeline/arrow-io.ts'))};
import { encodeFrameBatch } from ${JSON.stringify(join(root, 'pipeline/frame-batch.ts'))};
import { fromProcess } from ${JSON.stringify(join(root, 'pipeline/operators/from-process.ts'))};
import { map } from ${JSON.stringify(join(root, 'pipeline/operators/map.ts'))};
import { unwrap } from ${JSON.stringify(join(root, 'pipeline/operators/unwrap.ts'))};
const spec = ${JSON.stringify(spec)};
export default defineGraph({
  name: 'endless-export',
  description: 'exports an endless child stream (test fixture)',
  params: {},
  build: (_, { runDir, log }) => {
    let n = 0;
    return fromProcess('endless', process.execPath, ['-e', ${JSON.stringify(ENDLESS_WRITER)}], { chunkBytes: 65536 }).pipe(
      map('to-batch', (chunk, i) => encodeFrameBatch(spec, [{ id: 'chunk-' + i, frames: new Uint8Array(chunk) }])),
      writeArrow(runDir + '/out.arrow'),
      map('announce', (b) => { if (++n === 3) log('started'); return b; }),
      unwrap(),
    );
  },
});
`,
    );
    const runs = join(dir, 'runs');
    const cli = spawn(process.execPath, [join(root, 'bin/st-inpaint.js'), 'run', graphFile, '--out', runs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    cli.stdout.resume();
    let children: number[] = [];
    let runDir = '';
    try {
      for (let i = 0; i < 600 && !stderr.includes('started') && cli.exitCode === null; i++) await sleep(50);
      assert.match(stderr, /started/);
      children = descendants(cli.pid!);
      assert.equal(children.length, 1, 'the graph runs one child process');
      runDir = join(runs, 'endless-export', readdirSync(join(runs, 'endless-export'))[0]!);
      assert.equal(readdirSync(runDir).filter((f) => f.includes('.partial-')).length, 1);
    } finally {
      cli.kill('SIGINT');
    }
    const [code] = (await once(cli, 'exit')) as [number | null];
    assert.equal(code, 130);
    const lastLine = stderr.trim().split('\n').pop();
    assert.equal(lastLine, 'st-inpaint: interrupted by SIGINT; the graph was torn down');
    for (let i = 0; i < 100 && children.some((pid) => existsPid(pid)); i++) await sleep(20);
    for (const pid of children) assert.throws(() => process.kill(pid, 0), /ESRCH/, `child ${pid} still runs`);
    assert.deepEqual(readdirSync(runDir).sort(), ['metrics.jsonl'], 'only the metrics file stays');
  });
});
