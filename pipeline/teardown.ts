/**
 * Work that a stage's teardown starts but cannot finish synchronously. RxJS teardowns are
 * synchronous; some release steps are not (a checkpoint read back from a GPU, which Node can only
 * read asynchronously). A stage hands such work to {@link finishAfterTeardown}; the runner awaits
 * {@link settleTeardowns} before a run resolves or rejects, so a process does not exit halfway
 * through writing what the teardown was for.
 *
 * Must not know about video, tensors or datasets.
 */

const pending = new Set<Promise<void>>();
const failures: unknown[] = [];

/** Registers teardown work; its failure is kept for {@link settleTeardowns} instead of going unhandled. */
export function finishAfterTeardown(work: Promise<unknown>): void {
  const settled = work.then(
    () => undefined,
    (err: unknown) => void failures.push(err),
  );
  pending.add(settled);
  void settled.finally(() => pending.delete(settled));
}

/** Waits for all registered teardown work (including work registered meanwhile); resolves to the failures, once each. */
export async function settleTeardowns(): Promise<unknown[]> {
  while (pending.size > 0) await Promise.all([...pending]);
  return failures.splice(0);
}
