'use strict';
// orch relay: make the gateway's loopback-only services reachable from published ports.
//
// Why: the browser control server (base+2) and the managed-Chrome CDP ports bind
// 127.0.0.1 inside the container, and Docker's published ports arrive on the
// container's own interface address, never on its loopback. This relay listens
// on every non-loopback IPv4 address of the container and pipes each TCP
// connection to 127.0.0.1:TARGET.
//
// It deliberately does NOT listen on 0.0.0.0: that would take the port on
// 127.0.0.1 too and clash with the service it relays to. The interface list is
// re-read every few seconds so `docker network connect` is picked up.
//
// ORCH_RELAYS = comma list of LISTEN:TARGET, or ranges of equal length
//   "18791:18791,18793:18789,18800-18899:18800-18899"
// Empty: nothing to do. `node relay.js --check` only validates ORCH_RELAYS.
// A listen port equal to OPENCLAW_GATEWAY_PORT is skipped: the gateway binds it
// on 0.0.0.0 itself (bind "lan") and a relay holding it first would stop it.

const net = require('node:net');
const os = require('node:os');

const RESCAN_MS = 5000;
const RETRY_MS = 2000;

function log(msg) {
  process.stderr.write(`orch-relay: ${msg}\n`);
}

function parsePorts(text, spec) {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`bad port or range "${text}" in "${spec}"`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || hi < lo) throw new Error(`bad port range "${text}" in "${spec}"`);
  return [lo, hi];
}

/** Parse ORCH_RELAYS into [{listen, target}] pairs; throws on any malformed entry. */
function parseRelays(value) {
  const pairs = [];
  for (const raw of (value || '').split(',')) {
    const spec = raw.trim();
    if (!spec) continue;
    const parts = spec.split(':');
    if (parts.length !== 2) throw new Error(`bad relay "${spec}": want LISTEN:TARGET`);
    const [l0, l1] = parsePorts(parts[0], spec);
    const [t0, t1] = parsePorts(parts[1], spec);
    if (l1 - l0 !== t1 - t0) throw new Error(`bad relay "${spec}": ranges differ in length`);
    for (let i = 0; i <= l1 - l0; i++) pairs.push({ listen: l0 + i, target: t0 + i });
  }
  const seen = new Set();
  for (const p of pairs) {
    if (seen.has(p.listen)) throw new Error(`listen port ${p.listen} appears twice`);
    seen.add(p.listen);
  }
  return pairs;
}

/** Non-loopback IPv4 addresses of this container (one per attached network). */
function addresses() {
  const out = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list || []) {
      if (a.family === 'IPv4' && !a.internal) out.push(a.address);
    }
  }
  return out;
}

function pipe(client, target) {
  const upstream = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
}

function main() {
  let pairs;
  try {
    pairs = parseRelays(process.env.ORCH_RELAYS);
  } catch (err) {
    log(`ORCH_RELAYS: ${err.message}`);
    process.exit(78);
  }
  if (process.argv.includes('--check')) process.exit(0);
  const gatewayPort = Number(process.env.OPENCLAW_GATEWAY_PORT || 0);
  pairs = pairs.filter((p) => {
    if (p.listen !== gatewayPort) return true;
    log(`skipping listen port ${p.listen}: it is the gateway's own port`);
    return false;
  });
  if (pairs.length === 0) return;

  const servers = new Map(); // "addr:port" -> net.Server
  const warned = new Set(); // keys whose failure was logged: log once, not every retry

  function open(addr, pair) {
    const key = `${addr}:${pair.listen}`;
    const server = net.createServer({ allowHalfOpen: true }, (c) => pipe(c, pair.target));
    servers.set(key, server);
    server.on('error', (err) => {
      servers.delete(key);
      if (!warned.has(key)) log(`${key}: ${err.code || err.message}; retrying every few s`);
      warned.add(key);
      setTimeout(() => {
        if (!servers.has(key) && addresses().includes(addr)) open(addr, pair);
      }, RETRY_MS);
    });
    server.listen({ host: addr, port: pair.listen, exclusive: true }, () => {
      if (warned.delete(key)) log(`${key}: listening now`);
    });
  }

  function sync() {
    const current = addresses();
    for (const addr of current) {
      let added = 0;
      for (const pair of pairs) {
        if (!servers.has(`${addr}:${pair.listen}`)) {
          open(addr, pair);
          added++;
        }
      }
      if (added) log(`${addr}: relaying ${process.env.ORCH_RELAYS} to 127.0.0.1`);
    }
    for (const [key, server] of servers) {
      if (!current.includes(key.slice(0, key.lastIndexOf(':')))) {
        server.close();
        servers.delete(key);
      }
    }
  }

  sync();
  setInterval(sync, RESCAN_MS);
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
}

if (require.main === module) main();
module.exports = { parseRelays, addresses };
