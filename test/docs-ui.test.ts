// The Swagger UI at /docs, in Chromium, under the content security policy the API sends with it: the UI loads
// the OpenAPI document and lists the routes, and the browser reports no policy violation.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../services/api/src/app';
import { createDeps, type ApiDeps } from '../services/api/src/deps';
import { testConfig } from './support/services';
import { chromiumMissing, launchBrowser, type Browser } from './support/browser';

const missing = chromiumMissing();

describe.skipIf(!!missing)(`Swagger UI under its CSP${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let b: Browser;

  beforeAll(async () => {
    deps = createDeps(testConfig());
    app = await buildApp(deps);
    await app.listen({ host: '127.0.0.1', port: 0 });
    b = await launchBrowser();
  });
  afterAll(async () => {
    await b?.close();
    await app?.close();
    await deps?.close();
  });

  it('renders the routes with no CSP violation', async () => {
    const violations: string[] = [];
    b.page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
    });
    const { port } = app.server.address() as AddressInfo;
    const res = await b.page.goto(`http://127.0.0.1:${port}/docs`);
    expect(res?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await b.page.waitForSelector('.opblock-summary-path', { timeout: 30_000 });
    expect(await b.page.locator('.opblock-summary-path').allTextContents()).toContain('/v1/datasets');
    expect(violations).toEqual([]);
    expect(b.pageErrors).toEqual([]);
  });
});
