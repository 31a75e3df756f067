#!/usr/bin/env node
// The st-inpaint command. The sources are TypeScript, run through tsx's loader: no build step.
import { register as registerHooks } from 'node:module';
import { register } from 'tsx/esm/api';

register();
// Users' graph files import the framework as `st-inpaint` wherever they are.
registerHooks('./self-resolve.mjs', import.meta.url);
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
