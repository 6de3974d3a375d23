#!/usr/bin/env node
// The `graft` command: registers tsx's loader, then runs the TypeScript entry point.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
await main();
