// The API's contract as it documents it: every route of the OpenAPI document (/docs) has a response schema for
// its success and its errors, every error status carries the catalogue's error body, and docs/api.md is the
// document as the code makes it today.
import fs from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERRORS, ERROR_CODES } from '@graft/contract';
import { openApiDocument, type OpenApiDocument } from '../src/openapi/document';
import { apiMarkdown } from '../src/openapi/markdown';

const API_DOC = new URL('../../../docs/api.md', import.meta.url);

/** Each route (METHOD path) and what its documented answers lack. */
function undocumented(doc: OpenApiDocument): string[] {
  const problems: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(op.responses ?? {});
      const ok = statuses.filter((s) => /^2\d\d$/.test(s));
      if (!ok.length) problems.push(`${where}: no success response`);
      for (const s of ok) {
        const r = op.responses[s]!;
        if (s !== '204' && !Object.values(r.content ?? {}).some((c) => c.schema)) problems.push(`${where}: ${s} has no schema`);
      }
      const errors = statuses.filter((s) => /^[45]\d\d$/.test(s));
      if (!errors.some((s) => s.startsWith('4')) || !errors.some((s) => s.startsWith('5'))) problems.push(`${where}: no error responses`);
      for (const s of errors) {
        const schema = op.responses[s]!.content?.['application/json']?.schema;
        if (!schema?.properties?.error) problems.push(`${where}: ${s} is not the error body`);
      }
    }
  }
  return problems;
}

describe('the API contract', () => {
  let doc: OpenApiDocument;
  beforeAll(async () => {
    doc = await openApiDocument();
  });

  it('documents a response schema and the error answers of every route', () => {
    expect(Object.keys(doc.paths).length).toBeGreaterThan(20);
    expect(undocumented(doc)).toEqual([]);
  });

  it('finds a route without a response schema, or without error answers', () => {
    const bare: OpenApiDocument = {
      info: doc.info,
      paths: {
        '/v1/things': { get: { responses: { 200: { description: 'Default Response' } } } },
        '/v1/other': { post: { responses: { 201: { content: { 'application/json': { schema: { type: 'object' } } } } } } },
      },
    };
    expect(undocumented(bare)).toEqual([
      'GET /v1/things: 200 has no schema',
      'GET /v1/things: no error responses',
      'POST /v1/other: no error responses',
    ]);
  });

  it("names each route's own error codes with their statuses", () => {
    const del = doc.paths['/v1/datasets/{id}']!.delete!;
    expect(del.responses['404']!.description).toContain('DATASET_NOT_FOUND');
    expect(del.responses['409']!.description).toContain('DATASET_IN_USE');
    expect(del.responses['401']!.description).toBe('UNAUTHORIZED');
    const codes = doc.paths['/v1/jobs']!.post!.responses['400']!.content!['application/json']!.schema.properties.error.properties.code;
    expect(codes.enum).toEqual(ERROR_CODES);
  });

  it('keeps a closed catalogue: each code once, with a status of 4xx or 5xx where it is answered over HTTP', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) {
      const { status, meaning } = ERRORS[code];
      expect(status === null || (status >= 400 && status < 600), code).toBe(true);
      expect(meaning.length, code).toBeGreaterThan(10);
    }
    expect(ERROR_CODES).not.toContain('UPLOAD_ABORTED');
    expect(ERROR_CODES).not.toContain('SINGLE_CLASS');
  });

  it('has docs/api.md as the code documents the API today (npm run docs:api writes it)', () => {
    const written = fs.existsSync(API_DOC) ? fs.readFileSync(API_DOC, 'utf8') : '';
    expect(written === apiMarkdown(doc), 'docs/api.md is out of date: run npm run docs:api').toBe(true);
    expect(written).toContain('## Error catalogue');
    for (const code of ERROR_CODES) expect(written).toContain(`| \`${code}\` |`);
  });
});
