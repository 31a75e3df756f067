// Entry of the second training thread (parallel.ts): the sources are TypeScript, run through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./parallel-worker.ts');
