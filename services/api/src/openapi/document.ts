// The OpenAPI document of the API as /docs/json serves it, built without a Redis or S3 to talk to: the app is
// assembled and made ready, its document read, and everything closed again.
import { loadConfig } from '@graft/config';
import { buildApp } from '../app';
import { createDeps } from '../deps';

export type OpenApiDocument = {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
};
export interface OpenApiOperation {
  tags?: string[];
  summary?: string;
  description?: string;
  parameters?: { in: string; name: string; required?: boolean; schema: JsonSchema; description?: string }[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { description?: string; content?: Record<string, { schema: JsonSchema }> }>;
}
export type JsonSchema = Record<string, any>;

/** The document as a service with API keys serves it (the bearer scheme shown). */
export async function openApiDocument(): Promise<OpenApiDocument> {
  const config = loadConfig({
    REDIS_URL: 'redis://127.0.0.1:1',
    S3_ENDPOINT: 'http://127.0.0.1:1',
    GRAFT_API_KEYS: 'docs:docs-key-0123456789abcdef',
    LOG_LEVEL: 'silent',
  });
  const deps = createDeps(config);
  try {
    const app = await buildApp(deps);
    try {
      await app.ready();
      return app.swagger() as unknown as OpenApiDocument;
    } finally {
      await app.close();
    }
  } finally {
    await deps.close();
  }
}
