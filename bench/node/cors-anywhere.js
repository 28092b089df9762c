// cors-anywhere as its README sets it up, with an origin whitelist like the other contenders':
//   node bench/node/cors-anywhere.js PORT ORIGIN
// Requests go to http://127.0.0.1:PORT/<upstream URL>; bench/run.py starts and stops it.
const [port, origin] = process.argv.slice(2);
require("cors-anywhere").createServer({
  originWhitelist: [origin],
  requireHeader: ["origin"],
  removeHeaders: ["cookie", "cookie2"],
  corsMaxAge: 600,
}).listen(Number(port), "127.0.0.1");
