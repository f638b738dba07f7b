'use strict';
// Docker HEALTHCHECK: GET http://127.0.0.1:$OPENCLAW_GATEWAY_PORT/healthz (no auth).
// Node instead of curl: the image has node anyway and no curl. Exit 0 = healthy.
const http = require('node:http');

const port = Number(process.env.OPENCLAW_GATEWAY_PORT || 18789);
const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 4000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => {
  process.stderr.write(`healthz: no answer on port ${port} within 4 s\n`);
  process.exit(1);
});
req.on('error', (err) => {
  process.stderr.write(`healthz: ${err.code || err.message} on port ${port}\n`);
  process.exit(1);
});
