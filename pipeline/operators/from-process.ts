/**
 * `fromProcess`: a source over a child process's stdout (ffmpeg writing raw frames, a decompressor),
 * read against credit like any byte stream: when the graph stalls, the pipe fills and the child
 * blocks on its write. The run fails with the exit code and the end of stderr if the child fails;
 * unsubscribing kills it (SIGTERM, then SIGKILL if it lingers).
 */
import { spawn } from 'node:child_process';
import type { Source } from '../stage.ts';
import { fromReadable, type ReadableOptions } from './from-readable.ts';

export interface ProcessOptions extends ReadableOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Milliseconds between SIGTERM and SIGKILL on cancellation. Default 2000. */
  readonly killGraceMs?: number;
}

const STDERR_TAIL = 2048;

/**
 * @example
 * fromProcess('decode', 'ffmpeg', ['-i', file, '-f', 'rawvideo', '-pix_fmt', 'gray', '-'], { chunkBytes: 160 * 120 })
 * @returns a source of stdout chunks.
 */
export function fromProcess(name: string, command: string, args: readonly string[], options: ProcessOptions = {}): Source<Buffer> {
  return fromReadable(
    name,
    () => {
      const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (s: string) => (stderr = (stderr + s).slice(-STDERR_TAIL)));
      const done = new Promise<void>((resolve, reject) => {
        child.once('error', (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
        child.once('close', (code, signal) => {
          if (code === 0) return resolve();
          const lastLine = stderr.trim().split('\n').pop() ?? '';
          reject(new Error(`${command} ${signal ? `was killed by ${signal}` : `exited with code ${String(code)}`}${lastLine ? `: ${lastLine}` : ''}`));
        });
      });
      done.catch(() => {}); // observed by fromReadable when stdout ends
      return {
        stream: child.stdout,
        done,
        ref: { file: command },
        close: () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          setTimeout(() => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          }, options.killGraceMs ?? 2000).unref();
        },
      };
    },
    options,
  );
}
