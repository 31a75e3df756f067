/**
 * Several streams read in turn, one item from each, skipping those that ended: a dataset whose
 * files are each one class (KTH's zips are by action) then reaches a shuffle buffer already mixed,
 * where reading the files one after another would fill the buffer with one class for long
 * stretches. Only one item of each stream is pulled at a time, and the order is a pure function of
 * the streams' own orders.
 *
 * Must not know about tensors or any dataset.
 */

/**
 * @example
 * for await (const video of roundRobin(zips.map((zip) => videosOf(zip)))) …
 */
export async function* roundRobin<T>(streams: ReadonlyArray<AsyncIterable<T>>): AsyncGenerator<T> {
  const active = streams.map((s) => s[Symbol.asyncIterator]());
  try {
    while (active.length > 0) {
      for (let i = 0; i < active.length; ) {
        const r = await active[i]!.next();
        if (r.done) {
          active.splice(i, 1);
          continue;
        }
        yield r.value;
        i += 1;
      }
    }
  } finally {
    // Stopped early (the consumer unsubscribed): close every stream still open.
    await Promise.all(active.map((it) => it.return?.()));
  }
}
