import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import { mintToken, parseTtl } from '../identity/token.js';
import type { CliIo } from './io.js';

/** `pgwarden token --tenant acme --human alice@acme.test --agent support-bot [--roles r1,r2] [--ttl 15m]` */
export async function tokenCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', default: 'pgwarden.yaml' },
      tenant: { type: 'string' },
      human: { type: 'string' },
      agent: { type: 'string' },
      roles: { type: 'string', default: '' },
      ttl: { type: 'string', default: '15m' },
    },
    strict: true,
  });
  if (!values.tenant || !values.human) {
    io.stderr(
      'usage: pgwarden token --tenant <id> --human <email> [--agent <name>] [--roles r1,r2] [--ttl 15m] [--config file]',
    );
    return 2;
  }
  const config = loadConfigFile(values.config);
  const token = await mintToken(config.auth, {
    tenant: values.tenant,
    human: values.human,
    ...(values.agent ? { agent: values.agent } : {}),
    roles: values.roles.split(',').filter(Boolean),
    ttlSeconds: parseTtl(values.ttl),
  });
  io.stdout(token);
  return 0;
}
