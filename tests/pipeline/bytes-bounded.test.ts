/**
 * Byte-bounded reading: a local HTTP server on 127.0.0.1 offers 1 GiB; the graph's consumer takes
 * two chunks and stalls. What the source has read from the socket (taken plus buffered in the
 * stream) must stay under a few MiB: the credit protocol reaches down to TCP flow control.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get, createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { NEVER, timer, map as rxMap } from 'rxjs';
import { fromReadable } from '../../pipeline/operators/from-readable.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('reading a byte stream against credit', () => {
  it('reads only a few MiB of a 1 GiB response while the consumer stalls', async () => {
    let served = 0;
    // Whether the server is waiting for the socket to drain, and how many times it has resumed.
    let blocked = false;
    let drains = 0;
    const block = Buffer.alloc(64 * 1024, 7);
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-length': String(GiB) });
      const pump = (): void => {
        while (served < GiB) {
          served += block.length;
          if (!res.write(block)) {
            blocked = true;
            return void res.once('drain', () => {
              blocked = false;
              drains += 1;
              pump();
            });
          }
        }
        res.end();
      };
      req.socket.once('close', () => res.destroy());
      pump();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;

    let response: IncomingMessage | undefined;
    let taken = 0;
    const subscription = fromReadable(
      'http-body',
      () =>
        new Promise<IncomingMessage>((resolve, reject) => get({ host: '127.0.0.1', port, path: '/' }, resolve).on('error', reject)).then((res) => {
          response = res;
          return { stream: res, ref: { file: `http://127.0.0.1:${port}/` } };
        }),
      { capacity: 2 },
    )
      .pipe(
        mapAsync('stalled-consumer', (chunk: Buffer) => {
          taken += chunk.length;
          return taken > 128 * 1024 ? NEVER : timer(0).pipe(rxMap(() => chunk.length));
        }),
        unwrap(),
      )
      .subscribe({ error: (e: unknown) => assert.fail(String(e)) });

    // Until the consumer has stalled and the server has stayed blocked by TCP, with no further
    // drain, for 10 polls in a row: from then on nothing more is read.
    let still = 0;
    let lastDrains = -1;
    for (let polls = 0; still < 10 && polls < 500; polls++) {
      await sleep(20);
      still = taken > 128 * 1024 && blocked && drains === lastDrains ? still + 1 : 0;
      lastDrains = drains;
    }
    assert.equal(still, 10, 'the consumer stalled and the server stayed blocked');
    const buffered = (response?.readableLength ?? 0) + (response?.socket?.readableLength ?? 0);
    const readBySource = taken + buffered;
    console.log(`server pushed ${(served / MiB).toFixed(1)} MiB into the socket; source took ${(taken / MiB).toFixed(2)} MiB, ${(buffered / MiB).toFixed(2)} MiB buffered in the stream`);
    assert.ok(readBySource < 4 * MiB, `read ${readBySource} bytes`);
    // The kernel's socket buffers hold a few MiB more; the server is stopped by TCP, far from 1 GiB.
    assert.ok(served < 64 * MiB, `server pushed ${served} bytes`);

    subscription.unsubscribe();
    await sleep(50);
    assert.equal(response?.destroyed, true, 'the response stream is destroyed on unsubscribe');
    server.close();
    server.closeAllConnections();
    await once(server, 'close');
  });
});
