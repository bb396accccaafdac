import { z } from 'zod';
import { rulesSchema } from './rules-schema.js';

/**
 * The JSON Schema of rule files, generated from the zod schema so editors autocomplete
 * (`# yaml-language-server: $schema=./schema.json`). rules/schema.json holds its output; a test
 * fails when the file is stale. Regenerate: `npx tsx src/policy/rules-json-schema.ts > rules/schema.json`.
 */
export function rulesJsonSchema(): string {
  const schema = z.toJSONSchema(rulesSchema, { io: 'input', unrepresentable: 'any' });
  return `${JSON.stringify({ title: 'pgwarden rules', ...schema }, null, 2)}\n`;
}

if (process.argv[1]?.endsWith('rules-json-schema.ts')) process.stdout.write(rulesJsonSchema());
