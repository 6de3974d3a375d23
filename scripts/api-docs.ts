// Writes docs/api.md from the API's OpenAPI document (npm run docs:api); with --check, fails where the file
// differs from what the code documents.
import fs from 'node:fs';
import { openApiDocument } from '../services/api/src/openapi/document';
import { apiMarkdown } from '../services/api/src/openapi/markdown';

export const API_DOC = new URL('../docs/api.md', import.meta.url).pathname;

const markdown = apiMarkdown(await openApiDocument());
if (process.argv.includes('--check')) {
  const current = fs.existsSync(API_DOC) ? fs.readFileSync(API_DOC, 'utf8') : '';
  if (current !== markdown) {
    console.error('docs/api.md is out of date with the API; run: npm run docs:api');
    process.exit(1);
  }
} else {
  fs.writeFileSync(API_DOC, markdown);
  console.log(`wrote ${API_DOC}`);
}
