import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { loadConfigFile } from '../src/config/load.js';

/**
 * No Docker engine runs on these machines, so docker/ is checked statically: what the compose file
 * and the Dockerfile refer to exists, the config they ship validates, and the ports agree.
 */
const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dockerDir = join(root, 'docker');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function dockerfileInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    current += ` ${line.replace(/\\$/, '')}`;
    if (!line.endsWith('\\')) {
      const m = /^\s*(\S+)\s+([\s\S]*)$/.exec(current);
      if (m?.[1] && m[2] !== undefined) out.push({ keyword: m[1].toUpperCase(), args: m[2].trim() });
      current = '';
    }
  }
  return out;
}

interface Copy {
  readonly sources: readonly string[];
  readonly dest: string;
}

function copies(instructions: readonly Instruction[]): Copy[] {
  return instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const dest = words.pop() ?? '';
      return { sources: words, dest };
    });
}

/**
 * Whether a .dockerignore line excludes `src` or something under it. Only the pattern forms the
 * file uses: a plain path, `**\/name` (at any depth) and `*.ext`.
 */
function ignoredBy(src: string, pattern: string): boolean {
  const segments = posix.normalize(src).replace(/\/$/, '').split('/');
  if (pattern.startsWith('**/')) return segments.includes(pattern.slice(3));
  if (pattern.startsWith('*.')) return segments.some((s) => s.endsWith(pattern.slice(1)));
  const p = pattern.replace(/\/$/, '');
  const path = segments.join('/');
  return path === p || path.startsWith(`${p}/`);
}

/** Compose's variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$. */
function interpolate(value: string, env: Readonly<Record<string, string>>): string {
  return value
    .replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}/g,
      (_, name: string, op?: string, arg?: string) => {
        const v = env[name];
        if (v !== undefined && v !== '') return v;
        if (op === '-') return arg ?? '';
        if (op === '?') throw new Error(`compose would stop: ${name}: ${arg}`);
        return '';
      },
    )
    .replaceAll('$$', '$');
}

type ComposeService = {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
};

const composeText = readFileSync(join(dockerDir, 'compose.yaml'), 'utf8');
const composeDoc = parseDocument(composeText);
const compose = composeDoc.toJS() as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};
const dockerfile = dockerfileInstructions(readFileSync(join(dockerDir, 'Dockerfile'), 'utf8'));

function service(name: string): ComposeService {
  const s = compose.services[name];
  if (s === undefined) throw new Error(`compose has no service "${name}"`);
  return s;
}

interface Mount {
  readonly source: string;
  readonly target: string;
  readonly bind: boolean;
}

/** Short-syntax volumes: a source starting with . or / is a bind mount (relative to docker/). */
function mounts(s: ComposeService): Mount[] {
  return (s.volumes ?? []).map((v) => {
    const [source = '', target = ''] = v.split(':');
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') };
  });
}

/** The container ports a service publishes ("host:container" or "ip:host:container"). */
function containerPorts(s: ComposeService): number[] {
  return (s.ports ?? []).map((p) => Number(String(p).split(':').pop()?.split('/')[0]));
}

/** Values the test gives to variables compose requires (a real deployment sets its own). */
const composeEnv = { PGWARDEN_HS256_SECRET: 'x'.repeat(64) };

function serviceEnv(s: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), composeEnv)]),
  );
}

/** docker/pgwarden.yaml as pgwarden sees it in the container: the file plus compose's environment. */
const config = loadConfigFile(join(dockerDir, 'pgwarden.yaml'), serviceEnv(service('pgwarden')));

/** Whether `path` (in the container) lies in a directory that a mount or a COPY provides. */
function providedInContainer(path: string, s: ComposeService): boolean {
  const inside = (dir: string): boolean =>
    path === dir.replace(/\/$/, '') || path.startsWith(`${dir.replace(/\/$/, '')}/`);
  return mounts(s).some((m) => inside(m.target)) || copies(dockerfile).some((c) => inside(c.dest));
}

describe('docker/compose.yaml', () => {
  it('parses as YAML without errors or warnings', () => {
    expect(composeDoc.errors).toEqual([]);
    expect(composeDoc.warnings).toEqual([]);
    expect(Object.keys(compose.services).sort()).toEqual(['pgwarden', 'postgres']);
  });

  it('runs postgres:18 and builds pgwarden from this repository with docker/Dockerfile', () => {
    expect(service('postgres').image).toBe('postgres:18');
    const build = service('pgwarden').build;
    expect(build).toBeDefined();
    const context = resolve(dockerDir, build?.context ?? '');
    expect(context).toBe(root);
    expect(existsSync(join(context, build?.dockerfile ?? ''))).toBe(true);
    expect(service('pgwarden').depends_on?.postgres?.condition).toBe('service_healthy');
  });

  it('bind-mounts only files and directories that exist in the repository', () => {
    const binds = Object.values(compose.services).flatMap((s) => mounts(s).filter((m) => m.bind));
    expect(binds.length).toBeGreaterThan(0);
    for (const m of binds) expect(existsSync(resolve(dockerDir, m.source)), m.source).toBe(true);
  });

  it('declares every named volume it uses', () => {
    const named = Object.values(compose.services).flatMap((s) => mounts(s).filter((m) => !m.bind));
    for (const m of named) expect(Object.keys(compose.volumes ?? {}), m.source).toContain(m.source);
  });

  it('stops when the token secret is not set, instead of starting pgwarden without one', () => {
    expect(() => interpolate(composeText, {})).toThrow(/PGWARDEN_HS256_SECRET/);
  });
});

describe('docker/Dockerfile', () => {
  const context = resolve(dockerDir, service('pgwarden').build?.context ?? '..');

  it('starts from node:20-slim', () => {
    expect(dockerfile[0]).toEqual({ keyword: 'FROM', args: 'node:20-slim' });
  });

  it('copies only paths that exist in the build context and are not excluded by its .dockerignore', () => {
    const ignore = readFileSync(join(dockerDir, 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const all = copies(dockerfile);
    expect(all.length).toBeGreaterThan(0);
    for (const c of all)
      for (const src of c.sources) {
        expect(existsSync(join(context, src)), src).toBe(true);
        for (const pattern of ignore) expect(ignoredBy(src, pattern), `${src} vs ${pattern}`).toBe(false);
      }
  });

  it('installs production dependencies only, which include tsx (pgwarden runs its sources through it)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    expect(pkg.dependencies?.tsx).toBeDefined();
    expect(readFileSync(join(root, 'bin/pgwarden.js'), 'utf8')).toContain('tsx');
    const install = dockerfile.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    expect(install).toBeGreaterThan(-1);
    expect(dockerfile[install]?.args).toMatch(/--omit[= ]dev/);
    // npm ci omits dev dependencies when NODE_ENV=production is already set.
    const prodEnv = dockerfile.findIndex((i) => i.keyword === 'ENV' && /NODE_ENV[= ]production/.test(i.args));
    expect(prodEnv === -1 || prodEnv > install).toBe(true);
  });

  it('runs as an unprivileged user, through the entrypoint, with the shipped config', () => {
    expect(dockerfile.find((i) => i.keyword === 'USER')?.args).toBe('node');
    const entry = readFileSync(join(dockerDir, 'entrypoint.sh'), 'utf8');
    expect(statSync(join(dockerDir, 'entrypoint.sh')).mode & 0o111).not.toBe(0);
    expect(entry).toContain('bin/pgwarden.js');
    const cmd = JSON.parse(dockerfile.find((i) => i.keyword === 'CMD')?.args ?? '[]') as string[];
    const configPath = cmd[cmd.indexOf('--config') + 1];
    expect(configPath).toBeDefined();
    expect(copies(dockerfile).some((c) => c.dest === configPath)).toBe(true);
    expect(
      mounts(service('pgwarden')).some((m) => m.target === configPath && m.source === './pgwarden.yaml'),
    ).toBe(true);
  });
});

describe('docker/pgwarden.yaml', () => {
  it('validates, given the environment compose passes', () => {
    expect(config.auth.hs256Secret).toBe(composeEnv.PGWARDEN_HS256_SECRET);
    expect(config.upstream.password).toBe(serviceEnv(service('postgres')).POSTGRES_PASSWORD);
  });

  it('names its instance, so the decision chain survives a recreated container (new hostname)', () => {
    expect(config.instanceId).toBeDefined();
  });

  it('points upstream at the postgres service, its database and its user', () => {
    const pgEnv = serviceEnv(service('postgres'));
    expect(config.upstream.host).toBe('postgres');
    // The postgres image listens on its default port.
    expect(config.upstream.port).toBe(5432);
    expect(config.upstream.database).toBe(pgEnv.POSTGRES_DB);
    expect(config.upstream.user).toBe(pgEnv.POSTGRES_USER ?? 'postgres');
  });

  it('listens on the port the Dockerfile exposes and compose publishes, on every interface', () => {
    const exposed = dockerfile
      .filter((i) => i.keyword === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.split('/')[0])));
    expect(config.listen.host).toBe('0.0.0.0');
    expect(exposed).toContain(config.listen.port);
    expect(containerPorts(service('pgwarden'))).toContain(config.listen.port);
    // The healthcheck probes the same port.
    expect(JSON.stringify(compose.services.pgwarden)).toContain(`connect(${config.listen.port},`);
    if (config.audit.api.enabled)
      expect(containerPorts(service('pgwarden'))).toContain(config.audit.api.port);
  });

  it('finds its rules, TLS files and spool where the image and compose put them', () => {
    const pgwarden = service('pgwarden');
    for (const p of config.rules.paths) expect(providedInContainer(p, pgwarden), p).toBe(true);
    const rulesMount = mounts(pgwarden).find((m) => config.rules.paths.includes(m.target));
    expect(rulesMount?.source).toBe('../rules');
    const entry = readFileSync(join(dockerDir, 'entrypoint.sh'), 'utf8');
    const tlsDir = /tls_dir=(\S+)/.exec(entry)?.[1];
    expect(config.tls.certFile).toBe(`${tlsDir}/tls.crt`);
    expect(config.tls.keyFile).toBe(`${tlsDir}/tls.key`);
    // Non-loopback clients only, so TLS must be on for anyone to log in.
    expect(config.tls.allowPlaintext).toBe('never');
    const spool = config.audit.spool.dir;
    expect(mounts(pgwarden).some((m) => !m.bind && spool.startsWith(`${m.target}/`))).toBe(true);
  });
});
