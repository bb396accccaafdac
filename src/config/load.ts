import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config, type ConfigInput } from './schema.js';

/** Deep-freezes a validated config so nothing changes it after start-up. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Validates config once; every problem is reported with its path. */
export function validateConfig(input: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map(
      (i) => `  ${source}: ${i.path.join('.') || '(root)'}: ${i.message}`,
    );
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return deepFreeze(result.data);
}

/** Environment variables that override the file, for secrets that do not belong in files. */
function envOverrides(env: NodeJS.ProcessEnv, input: Record<string, unknown>): void {
  const up = (input.upstream ??= {}) as Record<string, unknown>;
  if (env.PGWARDEN_UPSTREAM_PASSWORD) up.password = env.PGWARDEN_UPSTREAM_PASSWORD;
  const auth = (input.auth ??= {}) as Record<string, unknown>;
  if (env.PGWARDEN_HS256_SECRET) auth.hs256Secret = env.PGWARDEN_HS256_SECRET;
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  const input = z.record(z.string(), z.unknown()).safeParse(raw ?? {});
  if (!input.success) throw new ConfigError(`${path}: the config must be a YAML mapping`);
  envOverrides(env, input.data);
  return validateConfig(input.data, path);
}

export function buildConfig(input: ConfigInput): Config {
  return validateConfig(input);
}
