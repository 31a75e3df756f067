/**
 * A two-party all-reduce over shared memory: each side contributes a vector and a weight and gets
 * back the weighted mean, bitwise the same on both sides (the sum is taken in rank order). Calls
 * block synchronously (`Atomics.wait`), so a training step that is one synchronous block on each
 * thread can average its gradients in the middle without turning asynchronous.
 *
 * Layout of the SharedArrayBuffer: control words [arrived phase of rank 0, of rank 1, aborted],
 * then per phase parity and rank the weight (float64) and the values (float32). Phases alternate
 * parity, so a side writing phase k + 2 knows the other has read phase k (it passed phase k + 1).
 */

const CONTROL = 4; // int32 words
const WEIGHTS = 4; // float64: [parity][rank]

export class AllReduceAborted extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'AllReduceAborted';
  }
}

export class SharedAllReduce {
  private readonly control: Int32Array;
  private readonly weights: Float64Array;
  private readonly data: Float32Array;
  private readonly capacity: number;
  private phase = 0;

  /** Shared memory for vectors of at most `capacity` values. */
  static buffer(capacity: number): SharedArrayBuffer {
    return new SharedArrayBuffer(CONTROL * 4 + WEIGHTS * 8 + 4 * capacity * 4);
  }

  /**
   * @param rank 0 or 1; the two sides must use different ranks on the same buffer.
   * @param timeoutMs longest wait for the other side at one phase.
   */
  constructor(
    buffer: SharedArrayBuffer,
    readonly rank: 0 | 1,
    private readonly timeoutMs = 10 * 60_000,
  ) {
    this.control = new Int32Array(buffer, 0, CONTROL);
    this.weights = new Float64Array(buffer, CONTROL * 4, WEIGHTS);
    this.capacity = (buffer.byteLength - CONTROL * 4 - WEIGHTS * 8) / 16;
    this.data = new Float32Array(buffer, CONTROL * 4 + WEIGHTS * 8, 4 * this.capacity);
  }

  private slot(parity: number, rank: number): Float32Array {
    const at = (parity * 2 + rank) * this.capacity;
    return this.data.subarray(at, at + this.capacity);
  }

  /** The weighted mean of this side's `values` and the other side's, with weights ≥ 0 not both 0. */
  reduce(values: Float32Array, weight: number): Float32Array {
    if (values.length > this.capacity) throw new Error(`all-reduce: ${values.length} values, room for ${this.capacity}`);
    const phase = ++this.phase;
    const parity = phase & 1;
    this.slot(parity, this.rank).set(values);
    this.weights[parity * 2 + this.rank] = weight;
    Atomics.store(this.control, this.rank, phase);
    Atomics.notify(this.control, this.rank);
    this.waitFor(phase);
    const [a, b] = [this.slot(parity, 0), this.slot(parity, 1)];
    const [wa, wb] = [this.weights[parity * 2]!, this.weights[parity * 2 + 1]!];
    const total = wa + wb;
    const out = new Float32Array(values.length);
    for (let i = 0; i < out.length; i++) out[i] = (wa * a[i]! + wb * b[i]!) / total;
    return out;
  }

  private waitFor(phase: number): void {
    const other = 1 - this.rank;
    for (;;) {
      if (Atomics.load(this.control, 2) !== 0) throw new AllReduceAborted('the other training thread stopped');
      const seen = Atomics.load(this.control, other);
      if (seen >= phase) return;
      if (Atomics.wait(this.control, other, seen, this.timeoutMs) === 'timed-out') {
        throw new AllReduceAborted(`the other training thread did not reach step phase ${phase} within ${this.timeoutMs / 1000} s`);
      }
    }
  }

  /** Wakes and fails the other side's current or next wait. */
  abort(): void {
    Atomics.store(this.control, 2, 1);
    Atomics.notify(this.control, this.rank);
  }
}
