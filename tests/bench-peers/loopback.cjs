// Preloaded into the peer emulators by scripts/bench-compare (`node --require ./loopback.cjs ...`).
//
// - Binds every listening socket to 127.0.0.1: kinesis-mock hard-codes 0.0.0.0 and kinesalite's CLI
//   binds every interface, and the benchmark must stay on loopback.
// - Lets a peer take a kernel-chosen free port, so there is no race between picking a port and
//   binding it: a port listed in BENCH_PEER_ANY_PORT (comma-separated, e.g. "1,2") is replaced by 0.
//   Neither CLI can be given port 0 itself (kinesalite reads 0 as "default 4567"; kinesis-mock
//   opens two ports and would not say which is which).
// - Prints one line per bound socket on stdout, which the script reads:
//     bench-peer listening requested=<port asked for> url=http://127.0.0.1:<port bound>
'use strict';

const net = require('net');

const anyPort = new Set(
  (process.env.BENCH_PEER_ANY_PORT || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number),
);

const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  // listen(options[, cb]), listen(port[, host][, backlog][, cb]), listen(path[, cb]) or listen(handle[, cb]).
  let requested;
  if (args.length > 0 && args[0] !== null && typeof args[0] === 'object' && !('fd' in args[0]) && !('_handle' in args[0])) {
    const options = { ...args[0] };
    if (options.path === undefined) {
      requested = Number(options.port || 0);
      options.host = '127.0.0.1';
      if (anyPort.has(requested)) options.port = 0;
      delete options.ipv6Only;
    }
    args[0] = options;
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    requested = Number(args[0]);
    const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    const rest = args.slice(1).filter((a) => typeof a !== 'function' && typeof a !== 'string');
    // Drop any host argument and put loopback in its place; keep the backlog if one was given.
    args = [anyPort.has(requested) ? 0 : requested, '127.0.0.1', ...rest];
    if (callback) args.push(callback);
  }
  if (requested !== undefined) {
    this.once('listening', () => {
      const address = this.address();
      process.stdout.write(`bench-peer listening requested=${requested} url=http://127.0.0.1:${address.port}\n`);
    });
  }
  return listen.apply(this, args);
};
