/**
 * The tests of backend.test.ts with the native library turned off (ST_INPAINT_BLAS=off), so that
 * the XNNPACK routes of the supplied kernels, which every machine without OpenBLAS takes, stay
 * tested where OpenBLAS is installed. (Each test file runs in a process of its own.)
 */
process.env['ST_INPAINT_BLAS'] = 'off';
const { describeSelection, selectBackend } = await import('../../pipeline/backend.ts');
const { test } = await import('node:test');
const assert = (await import('node:assert/strict')).default;

test('with ST_INPAINT_BLAS=off the wasm backend says it has no native library', async () => {
  assert.match(describeSelection(await selectBackend('wasm')), /no native library: turned off by ST_INPAINT_BLAS/);
});

await import('./backend.test.ts');
