import { ConfigError } from './config/load.js';
import { processIo, type CliIo } from './cli/io.js';

type Command = (args: string[], io: CliIo) => Promise<number>;

/** Commands load lazily so `pgwarden token` does not pay for the proxy's start-up. */
const commands: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./cli/start.js')).startCommand,
  demo: async () => (await import('./cli/demo.js')).demoCommand,
  token: async () => (await import('./cli/token.js')).tokenCommand,
  explain: async () => (await import('./cli/explain.js')).explainCommand,
  rules: async () => (await import('./cli/rules.js')).rulesCommand,
  log: async () => (await import('./cli/log.js')).logCommand,
  audit: async () => (await import('./cli/audit.js')).auditCommand,
  api: async () => (await import('./cli/api.js')).apiCommand,
};

const usage = `usage: pgwarden <command> [options]

commands:
  start --config pgwarden.yaml     run the firewall
  demo                             embedded PostgreSQL + demo data + firewall on 127.0.0.1:6432
  token --tenant t --human h       mint a demo/test token (HS256 secret from the config)
  explain --tenant t "<sql>"       judge a statement: verdict, rules, rewritten SQL
  rules check | rules test <file>  validate rules; run rule test cases
  log [filters]                    search the decision log
  audit verify                     check the decision log's hash chain
  api --config pgwarden.yaml       the responders' API and web page alone, apart from the proxy
`;

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...args] = argv;
  const load = name ? commands[name] : undefined;
  if (!load) {
    io.stderr(usage);
    return name === undefined || name === 'help' || name === '--help' ? 0 : 2;
  }
  try {
    return await (
      await load()
    )(args, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(err.message);
      return 2;
    }
    io.stderr(`pgwarden ${name}: ${(err as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
