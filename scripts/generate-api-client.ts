// Writes packages/api-client/src/generated.ts from the OpenAPI document of a platform built in a
// temporary directory (no listener is opened). `npm run generate:api-client`; the server test
// apps/server/test/iam-api-client.test.ts fails when the committed file is stale.
import 'reflect-metadata';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { buildApp } from '../apps/server/src/app.ts';
import { loadConfig } from '../apps/server/src/config/index.ts';
import { silentLogger } from '../apps/server/src/kernel/index.ts';
import { generateClient, type OpenApiDocument } from '../packages/api-client/src/codegen.ts';

export const GENERATED = new URL('../packages/api-client/src/generated.ts', import.meta.url);

/** The client source for an OpenAPI document, formatted like the rest of the repository. */
export async function clientSource(doc: OpenApiDocument): Promise<string> {
  const options = (await resolveConfig(GENERATED.pathname)) ?? {};
  return format(generateClient(doc), { ...options, filepath: GENERATED.pathname });
}

export async function currentOpenApi(): Promise<OpenApiDocument> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-openapi-'));
  try {
    const config = loadConfig({
      env: {
        BULWARK_DATA_DIR: dir,
        BULWARK_HTTP_PORT: '0',
        BULWARK_MQTT_PORT: '0',
        BULWARK_LOG_LEVEL: 'silent',
      },
    });
    const app = await buildApp(config, { logger: silentLogger });
    try {
      await app.http.ready();
      return app.http.swagger() as unknown as OpenApiDocument;
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(GENERATED, await clientSource(await currentOpenApi()));
  console.log(`wrote ${GENERATED.pathname}`);
}
