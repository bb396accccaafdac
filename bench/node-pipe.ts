/**
 * A bare Node.js TCP pipe: bytes copied both ways, nothing parsed. The floor of any proxy written
 * in Node.js on this machine, so the report can tell pgwarden's own cost from the runtime's. It
 * moves bytes as pgwarden does ('data' handlers, write, pause until drain) and not with
 * stream.pipe(), whose extra stream machinery cost a quarter of the throughput in an A/B here and
 * so made the floor look lower than it is.
 * Usage: node bench/node-pipe.ts <listen port> <upstream host> <upstream port>
 */
import { connect, createServer, type Socket } from 'node:net';

const [listenPort, host, port] = process.argv.slice(2);

function relay(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('error', () => to.destroy());
  from.on('close', () => to.destroy());
}

const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host, port: Number(port), noDelay: true });
  relay(client, upstream);
  relay(upstream, client);
});
server.listen(Number(listenPort), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
