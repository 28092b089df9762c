// The export suite's Express API: the exported middleware mounted first, then a recording stub
// that answers 200, 404 or an unhandled error (Express's own 500) and sends CORS headers and a
// Vary of its own, which the middleware must replace or merge.
// Usage: node app.js PORT EXPORTED_MODULE
'use strict';

const express = require('express');

const [port, exported] = process.argv.slice(2);
const reached = new Set();
const app = express();
app.use(require(exported));

app.get('/__stub/reached', (req, res) => res.json([...reached]));
app.use((req, res) => {
  const id = req.get('X-Matrix-Id');
  if (id !== undefined) reached.add(id);
  // A crash before the app set anything: Express's own 500, which must still carry the policy.
  if (req.path.endsWith('/status/500')) throw new Error('the stub fails on purpose');
  res.set('Access-Control-Allow-Origin', 'https://upstream.invalid');
  res.set('Access-Control-Allow-Credentials', 'true');
  res.set('Access-Control-Allow-Methods', 'TRACE');
  res.set('Access-Control-Expose-Headers', 'X-Upstream-Secret');
  res.set('Access-Control-Debug', 'stub');
  res.vary('Accept-Encoding');
  res.status(req.path.endsWith('/status/404') ? 404 : 200).json({ stub: true });
});

app.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${port}`));
