/**
 * Adam against the formula computed independently in float64, on both of its routes (one pass
 * over host memory, tensor ops) and on both CPU backends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import { Adam } from '../../stages/gan/adam.ts';
import { Random } from '../../stages/random.ts';

const SHAPES: Record<string, number[]> = { w: [3, 4], b: [5], tiny: [6] };

/** The update p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε) with its moments, in float64. */
function reference(start: Record<string, Float64Array>, grads: Array<Record<string, Float64Array>>, rates: number[], beta1: number, beta2: number, eps: number) {
  const p = Object.fromEntries(Object.entries(start).map(([k, a]) => [k, Float64Array.from(a)]));
  const m = Object.fromEntries(Object.entries(start).map(([k, a]) => [k, new Float64Array(a.length)]));
  const v = Object.fromEntries(Object.entries(start).map(([k, a]) => [k, new Float64Array(a.length)]));
  grads.forEach((g, step) => {
    const t = step + 1;
    for (const k of Object.keys(p)) {
      for (let i = 0; i < p[k]!.length; i++) {
        m[k]![i] = beta1 * m[k]![i]! + (1 - beta1) * g[k]![i]!;
        v[k]![i] = beta2 * v[k]![i]! + (1 - beta2) * g[k]![i]! ** 2;
        p[k]![i] = p[k]![i]! - (rates[step]! * (m[k]![i]! / (1 - beta1 ** t))) / (Math.sqrt(v[k]![i]! / (1 - beta2 ** t)) + eps);
      }
    }
  });
  return { p, m, v };
}

function assertNear(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    const tol = 1e-6 + 1e-5 * Math.abs(expected[i]!);
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} against ${expected[i]}`);
  }
}

test('Adam equals the formula in float64 over several steps, on host memory and by ops, on wasm and cpu, and leaks nothing', async () => {
  const random = Random.fromKey('adam-test');
  const draw = (n: number, scale: number): Float64Array => Float64Array.from({ length: n }, () => random.uniform(-scale, scale));
  const size = (k: string): number => SHAPES[k]!.reduce((a, b) => a * b, 1);
  const start = Object.fromEntries(Object.keys(SHAPES).map((k) => [k, Float64Array.from(Float32Array.from(draw(size(k), 1)))]));
  // Gradients of very different sizes, and one step with a zero gradient; `tiny` always gets
  // gradients near ε, so that where ε enters the formula shows.
  const grads = [1, 1e-3, 0, 10].map((scale) => Object.fromEntries(Object.keys(SHAPES).map((k) => [k, Float64Array.from(Float32Array.from(draw(size(k), k === 'tiny' ? 3e-8 : scale)))])));
  const rates = [1e-2, 5e-3, 5e-3, 2e-2];
  for (const [beta1, beta2, epsilon] of [[0, 0.999, 1e-8], [0.9, 0.99, 1e-3]] as const) {
    const want = reference(start, grads, rates, beta1, beta2, epsilon);
    for (const backend of ['cpu', 'wasm']) {
      await selectBackend(backend);
      for (const onHost of [true, false]) {
        const what = `${backend}, ${onHost ? 'host pass' : 'ops'}, β = (${beta1}, ${beta2}), ε = ${epsilon}`;
        const variables = new Map(Object.keys(SHAPES).map((k) => [k, tf.variable(tf.tensor(Float32Array.from(start[k]!), SHAPES[k]), true, `adam-test-${k}-${backend}-${onHost}-${beta1}`)]));
        const adam = new Adam(variables, { beta1, beta2, epsilon, onHost });
        const before = tf.memory().numTensors;
        grads.forEach((g, step) => {
          const named = tf.tidy(() => Object.fromEntries([...variables].map(([k, variable]) => [variable.name, tf.tensor(Float32Array.from(g[k]!), SHAPES[k])])));
          adam.apply(named, rates[step]!);
          tf.dispose(Object.values(named));
          assert.equal(tf.memory().numTensors, before, `${what}: live tensors after step ${step + 1}`);
        });
        assert.equal(adam.iterations, grads.length);
        for (const [k, variable] of variables) {
          assertNear(variable.dataSync(), want.p[k]!, `${what}: ${k}`);
          assertNear(adam.state.get(`m/${k}`)!.dataSync(), want.m[k]!, `${what}: m/${k}`);
          assertNear(adam.state.get(`v/${k}`)!.dataSync(), want.v[k]!, `${what}: v/${k}`);
        }
        adam.dispose();
        for (const variable of variables.values()) variable.dispose();
      }
    }
  }
});
