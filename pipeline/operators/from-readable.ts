/**
 * `fromReadable`: a source over a Node byte stream (an HTTP body, a child's stdout, a file) that
 * reads only against credit. The stream stays in paused mode; while the output edge has no credit
 * nothing is read, the stream's buffer fills to its high-water mark and Node stops pulling from the
 * socket, pipe or file below. Bytes read ahead are therefore bounded by the high-water mark plus
 * `capacity` chunks, not just the number of items.
 *
 * With `chunkBytes` every chunk but the last has exactly that many bytes (raw video frames).
 */
import type { Readable } from 'node:stream';
import { Observable } from 'rxjs';
import type { Leased } from '../credit.ts';
import type { ElementRef } from '../errors.ts';
import { namedSource, type Source, type StageOptions } from '../stage.ts';
import { Outlet, checkPositiveInteger } from './internal.ts';

/** A byte stream together with what decides whether it ended well, and how to stop what feeds it. */
export interface ByteStream {
  readonly stream: Readable;
  /** Settles once the producer finished: rejects with the reason when it failed (e.g. an exit code). */
  readonly done?: Promise<void>;
  /** Stops what feeds the stream (kills a process, aborts a request); called on unsubscribe. */
  readonly close?: () => void;
  /** Names the stream in errors (a file, a URL). */
  readonly ref?: ElementRef;
}

function isByteStream(o: Readable | ByteStream): o is ByteStream {
  return 'stream' in o && typeof (o as ByteStream).stream?.read === 'function';
}

function release(opened: ByteStream): void {
  opened.stream.removeAllListeners('readable');
  opened.close?.();
  opened.stream.destroy();
}

export interface ReadableOptions extends Omit<StageOptions<never>, 'onError' | 'describe'> {
  /** Fixed chunk size in bytes; default: whatever the stream yields. */
  readonly chunkBytes?: number;
}

/**
 * @example
 * fromReadable('read-file', () => fs.createReadStream(path), { chunkBytes: 64 * 64 * 3 })
 * @param name stage name in telemetry and errors.
 * @param open called on subscription; returns the stream or a {@link ByteStream}, or a promise of
 *   one (an HTTP response); a stream that arrives after unsubscribing is destroyed at once.
 * @returns a source of Buffers that reads only against credit.
 */
export function fromReadable(name: string, open: () => Readable | ByteStream | Promise<Readable | ByteStream>, options: ReadableOptions = {}): Source<Buffer> {
  const { chunkBytes } = options;
  if (chunkBytes !== undefined) checkPositiveInteger(name, 'chunkBytes', chunkBytes);

  return namedSource(
    name,
    new Observable<Leased<Buffer>>((subscriber) => {
      let opened: ByteStream | undefined;
      let offset = 0;
      let ended = false;
      let finished = false;
      const where = (): ElementRef => ({ ...opened?.ref, byteOffset: offset });

      const outlet: Outlet<Buffer> = new Outlet<Buffer>(name, subscriber, options, () => {
        const stream = opened?.stream;
        while (stream && !finished && !outlet.closed) {
          if (!outlet.gate.tryAcquire()) return;
          const chunk = (chunkBytes === undefined ? stream.read() : stream.read(chunkBytes)) as Buffer | null;
          if (chunk === null) {
            outlet.gate.unacquire();
            if (ended) end();
            return;
          }
          offset += chunk.length;
          outlet.emit(chunk);
        }
      });

      function end(): void {
        if (finished) return;
        finished = true;
        const done = opened?.done ?? Promise.resolve();
        done.then(
          () => outlet.complete(),
          (err: unknown) => outlet.fail(err, where()),
        );
      }

      let closed = false;
      const attach = (o: Readable | ByteStream): void => {
        opened = isByteStream(o) ? o : { stream: o };
        const { stream } = opened;
        if (closed) return release(opened);
        stream.on('readable', outlet.pump.run);
        stream.on('end', () => {
          ended = true;
          outlet.pump.run();
        });
        stream.on('error', (err) => {
          if (finished) return;
          finished = true;
          outlet.fail(err, where());
        });
        outlet.pump.run();
      };

      try {
        const o = open();
        if (o instanceof Promise) o.then(attach, (err: unknown) => closed || outlet.fail(err, {}));
        else attach(o);
      } catch (err) {
        outlet.fail(err, {});
      }

      return () => {
        closed = true;
        finished = true;
        outlet.meter.finish();
        if (opened) release(opened);
      };
    }),
    { capacity: options.capacity, ...(chunkBytes !== undefined && { params: { chunkBytes } }) },
  );
}
