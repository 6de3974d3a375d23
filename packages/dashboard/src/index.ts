// Where the built dashboard lives, for the API that serves it. The front-end source is in web/.
import { fileURLToPath } from 'node:url';

/** The folder `npm run build -w @graft/dashboard` writes: index.html and assets/. */
export const distDir = fileURLToPath(new URL('../dist', import.meta.url));

/** The command that builds the dashboard, for messages that tell how. */
export const buildCommand = 'npm run build -w @graft/dashboard';
