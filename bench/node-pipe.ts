/**
 * A bare Node.js TCP pipe: bytes copied both ways, nothing parsed. The floor of any proxy written
 * in Node.js on this machine, so the report can tell pgwarden's own cost from the runtime's.
 * Usage: node bench/node-pipe.ts <listen port> <upstream host> <upstream port>
 */
import { connect, createServer } from 'node:net';

const [listenPort, host, port] = process.argv.slice(2);
const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host, port: Number(port), noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});
server.listen(Number(listenPort), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
