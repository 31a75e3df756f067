/**
 * Shape arithmetic that more than one backend's kernels need.
 *
 * Must not know about any model.
 */

/**
 * Reduces a permutation to its essential form: size-1 axes dropped, input axes that stay adjacent
 * merged. Returns the merged sizes (in input order) and the permutation of the merged axes.
 */
export function reducedPermutation(shape: readonly number[], perm: readonly number[]): { dims: number[]; perm: number[] } {
  const live = shape.map((_, a) => a).filter((a) => shape[a]! !== 1);
  const kept = perm.filter((a) => shape[a]! !== 1).map((a) => live.indexOf(a));
  const groups: number[][] = [];
  for (const a of kept) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1]! + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const inputOrder = [...groups].sort((g, h) => g[0]! - h[0]!);
  return { dims: inputOrder.map((g) => g.reduce((p, a) => p * shape[live[a]!]!, 1)), perm: groups.map((g) => inputOrder.indexOf(g)) };
}
