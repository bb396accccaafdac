import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const FILES: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/**
 * The responders' page: plain HTML, CSS and JS, read once at start. A strict CSP (no inline
 * script, same-origin only) matters because the page renders attacker-written SQL.
 */
export function registerWebPage(app: FastifyInstance): void {
  for (const [path, file] of Object.entries(FILES)) {
    const body = readFileSync(new URL(`./web/${file}`, import.meta.url), 'utf8');
    const type = TYPES[file.split('.').pop() as string] as string;
    app.get(path, { config: { public: true } }, async (_req, reply) =>
      reply
        .type(type)
        .header(
          'content-security-policy',
          "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
        )
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(body),
    );
  }
}
