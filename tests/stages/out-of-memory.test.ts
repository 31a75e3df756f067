/**
 * Running out of memory in a training step is one line naming the batch and the size it needed.
 * The trap is a real one, from a module that reads past its memory (what the wasm backend throws
 * when its heap cannot grow). A full run that
 * ends so (`run demo --size 64 --base 32 --batch 24`) takes 20 s on two cores, so the trap is made
 * directly here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutOfMemoryError, isOutOfMemory } from '../../stages/gan/trainer.ts';

/** WebAssembly as Node has it (this project's TypeScript libraries do not declare it). */
const wasm = (globalThis as unknown as { WebAssembly: { instantiate(bytes: Uint8Array): Promise<{ instance: { exports: Record<string, unknown> } }>; RuntimeError: new () => Error } }).WebAssembly;

/** A module whose only function loads from an address past its one page of memory. */
const OUT_OF_BOUNDS = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: 1 page
  0x07, 0x08, 0x01, 0x04, 0x6c, 0x6f, 0x61, 0x64, 0x00, 0x00, // export "load"
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x41, 0x80, 0x80, 0x08, 0x28, 0x02, 0x00, 0x0b, // i32.const 131072; i32.load; end
]);

test('a wasm trap for memory is out of memory; other errors are not', async () => {
  const { instance } = await wasm.instantiate(OUT_OF_BOUNDS);
  let trap: unknown;
  try {
    (instance.exports['load'] as () => number)();
  } catch (err) {
    trap = err;
  }
  assert.ok(trap instanceof wasm.RuntimeError, String(trap));
  assert.ok(isOutOfMemory(trap));
  assert.equal(isOutOfMemory(new Error('batch of clips [2, 8] does not fit the model')), false);
  assert.equal(isOutOfMemory(new RangeError('Invalid typed array length: -1')), false);
});

test('the message names the batch, the clips, C and the size of the widest tensor', () => {
  const err = new OutOfMemoryError({ base: 32, channels: 1, frames: 8, height: 64, width: 64, extraBlock: false }, 24, new Error('memory access out of bounds'));
  // 24 · 8 · 64 · 64 · 48 · 32 · 4 bytes = 4.5 GiB
  assert.equal(err.message, 'out of memory in a training step (memory access out of bounds): a batch of 24 clips of 8×64×64 at C = 32 holds tensors of 4.5 GiB and more; the wasm backend\'s memory stops at 4 GiB (use a smaller --batch, or a GPU backend)');
  assert.equal(err.message.includes('\n'), false);
});
