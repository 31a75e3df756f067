/**
 * Seeded random numbers whose state can be saved and restored (checkpoints), on pure-rand's
 * xoroshiro128+. A generator is keyed by any list of values (run seed, clip id, options) through
 * SHA-256, so that "the mask of clip k under these options" is a pure function of those values.
 *
 * Must not touch tensors or I/O.
 */
import { createHash } from 'node:crypto';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** The serialisable state of a {@link Random}: four 32-bit words. */
export type RandomState = readonly number[];

export class Random {
  private constructor(private rng: RandomGenerator) {}

  /**
   * A generator determined by `parts` alone (order matters; JSON-serialisable values and bigints).
   * @example Random.fromKey(runSeed, clip.id, 'raindrops', options)
   */
  static fromKey(...parts: readonly unknown[]): Random {
    const text = JSON.stringify(parts, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    const digest = createHash('sha256').update(text).digest();
    const words: number[] = [0, 4, 8, 12].map((o) => digest.readInt32LE(o));
    // xoroshiro128+ must not start from the all-zero state.
    if (!words.some((w) => w !== 0)) words[0] = 1;
    return new Random(xoroshiro128plusFromState(words));
  }

  /** Restores a generator saved with {@link state}. */
  static fromState(state: RandomState): Random {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w))) throw new RangeError(`random state must be four 32-bit integers, got ${JSON.stringify(state)}`);
    return new Random(xoroshiro128plusFromState(state));
  }

  /** The current state; `Random.fromState(r.state)` continues exactly where `r` is. */
  get state(): RandomState {
    return [...this.rng.getState()];
  }

  /** Uniform in [0, 1) with 53 random bits, or in [low, high) when bounds are given. */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * uniformFloat64(this.rng);
  }

  /** Uniform integer in [low, high] (both included). */
  int(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low + 1));
  }

  /** An independent generator derived from this one's state and a label (this one is not advanced). */
  fork(label: string): Random {
    return Random.fromKey(this.state, label);
  }
}
