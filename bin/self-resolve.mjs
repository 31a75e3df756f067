// Resolves `st-inpaint` and `st-inpaint/<subpath>` to this package's own exports from anywhere, so
// that a graph file in any folder (`st-inpaint run ~/my-graphs/x.ts`) imports the framework by its
// package name, as it would once st-inpaint is installed in its own project. Node resolves a
// package's own name only from inside it: the request is resolved as if made from here.
const self = new URL('../package.json', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'st-inpaint' || specifier.startsWith('st-inpaint/')) return nextResolve(specifier, { ...context, parentURL: self });
  return nextResolve(specifier, context);
}
