/**
 * Adam (Kingma & Ba) over a fixed list of variables, with its moments as named state so that a
 * checkpoint restores it exactly, and the learning rate passed per step (the schedule lives with
 * the trainer). Written here rather than taken from tfjs's `train.adam` because that one hides its
 * learning rate and bias-correction powers, which an exact resume and a decaying rate need.
 *
 * Update, as PyTorch's: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε).
 *
 * On the backends whose tensors live in this process's memory (wasm, cpu: {@link computesOnHost})
 * each variable's update is one pass in JS over its values; on TensorFlow's native backends the
 * same formula runs as tensor ops. The networks have many small variables, so as ops the update
 * was 14 kernel calls per variable and per step, 16 – 18 ms of every iteration per thread on the
 * bench's demo preset.
 */
import * as tf from '@tensorflow/tfjs-core';
import { computesOnHost } from '../../pipeline/backend.ts';

export interface AdamOptions {
  /** Default 0 (method.md §4). */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly epsilon?: number;
  /**
   * Whether to update in one pass over host memory (default: on the wasm and cpu backends) or by
   * tensor ops (default elsewhere). Both compute the same formula; the tests run both.
   */
  readonly onHost?: boolean;
}

export class Adam {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** Updates applied so far (t of the bias correction). */
  iterations = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly onHost: boolean | undefined;

  constructor(
    private readonly variables: ReadonlyMap<string, tf.Variable>,
    options: AdamOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.onHost = options.onHost;
    for (const [name, variable] of variables) {
      this.m.set(name, tf.variable(tf.zerosLike(variable), false));
      this.v.set(name, tf.variable(tf.zerosLike(variable), false));
    }
  }

  /** One update with gradients keyed by the variables' tfjs names (as `tf.variableGrads` returns them). */
  apply(grads: tf.NamedTensorMap, learningRate: number): void {
    this.iterations += 1;
    const t = this.iterations;
    const c1 = 1 - this.beta1 ** t;
    const c2 = 1 - this.beta2 ** t;
    const onHost = this.onHost ?? computesOnHost(tf.getBackend());
    tf.tidy(() => {
      for (const [name, variable] of this.variables) {
        const g = grads[variable.name];
        if (!g) throw new Error(`Adam: no gradient for "${name}"`);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        if (onHost) {
          this.updateOnHost(variable, g, m, v, learningRate, c1, c2);
          continue;
        }
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const step = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        variable.assign(tf.sub(variable, tf.mul(step, learningRate)));
      }
    });
  }

  /** The same update as the ops in `apply`, in one pass over the values (inside apply's tidy). */
  private updateOnHost(variable: tf.Variable, grad: tf.Tensor, m: tf.Variable, v: tf.Variable, learningRate: number, c1: number, c2: number): void {
    const [g, m0, v0, p0] = [grad, m, v, variable].map((x) => x.dataSync() as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array];
    const n = p0.length;
    const [m1, v1, p1] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
    const [b1, b2, eps] = [this.beta1, this.beta2, this.epsilon];
    for (let i = 0; i < n; i++) {
      const gi = g[i]!;
      const mi = Math.fround(b1 * m0[i]! + (1 - b1) * gi);
      const vi = Math.fround(b2 * v0[i]! + (1 - b2) * gi * gi);
      m1[i] = mi;
      v1[i] = vi;
      p1[i] = p0[i]! - (learningRate * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
    }
    m.assign(tf.tensor(m1, m.shape, 'float32'));
    v.assign(tf.tensor(v1, v.shape, 'float32'));
    variable.assign(tf.tensor(p1, variable.shape, 'float32'));
  }

  /** The moments by `m/<name>` and `v/<name>`, for checkpoints. */
  get state(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, m] of this.m) out.set(`m/${name}`, m);
    for (const [name, v] of this.v) out.set(`v/${name}`, v);
    return out;
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
  }
}
