/**
 * Adam (Kingma & Ba) over a fixed list of variables, with its moments as named state so that a
 * checkpoint restores it exactly, and the learning rate passed per step (the schedule lives with
 * the trainer). Written here rather than taken from tfjs's `train.adam` because that one hides its
 * learning rate and bias-correction powers, which an exact resume and a decaying rate need.
 *
 * Update, as PyTorch's: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamOptions {
  /** Default 0 (method.md §4). */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly epsilon?: number;
}

export class Adam {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** Updates applied so far (t of the bias correction). */
  iterations = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;

  constructor(
    private readonly variables: ReadonlyMap<string, tf.Variable>,
    options: AdamOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
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
    tf.tidy(() => {
      for (const [name, variable] of this.variables) {
        const g = grads[variable.name];
        if (!g) throw new Error(`Adam: no gradient for "${name}"`);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const step = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        variable.assign(tf.sub(variable, tf.mul(step, learningRate)));
      }
    });
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
