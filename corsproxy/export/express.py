"""Plan -> a CommonJS Express middleware for the API itself (express 5 and the `cors` package).

One builder per block: a constant per route (its policy as data, under a comment naming the
route and `file:line`), the route list in match order, and the guard. `cors` writes the headers;
the guard does what `cors` alone would not: refuse a foreign origin with 403 before the API
runs, answer a preflight that asks for too much the way corsproxy does, keep the API's own
Access-Control-* headers out, and merge Vary.
"""

from __future__ import annotations

import json

from corsproxy.export.plan import PREFLIGHT_VARY, Deviation, Plan, RoutePlan, app_fields, app_paths, route_blocks

TARGET = "express"
TESTED_ON = "Express 5.3.0 with cors 2.8.6 on Node.js 20"
DEVIATIONS: tuple[Deviation, ...] = ()


def render(plan: Plan) -> str:
    blocks = ["\n".join(f"// {line}".rstrip() for line in plan.header_comment(TESTED_ON)),
              "'use strict';\n\nconst cors = require('cors');"]
    names, routes = route_blocks(plan, route_block)
    blocks += routes
    blocks.append("// Longest path first: the first that matches is the route.\n"
                  f"const ROUTES = [{', '.join(names)}];")
    blocks.append(RUNTIME.strip())
    return "\n\n".join(blocks) + "\n"


def route_block(name: str, route: RoutePlan) -> str:
    r = route.route
    lines = [f"// route {r.prefix} ({r.source}): the API's paths {app_paths(route.path)}", f"const {name} = {{"]
    lines += [f"  {_camel(key)}: {json.dumps(value)}," for key, value in app_fields(route)]
    regex = route.cors.origin_regex
    lines.append(f"  originRegex: {f'new RegExp({json.dumps(regex)})' if regex else 'null'},")
    return "\n".join([*lines, "};"])


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


RUNTIME = r"""
const SAFELISTED_METHODS = ['GET', 'HEAD', 'POST'];
const NORMALIZED_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'];
const SAFELISTED_HEADERS = ['accept', 'accept-language', 'content-language', 'content-type'];
const PREFLIGHT_VARY = %(vary)s;

function routeFor(path) {
  return ROUTES.find((route) => route.path === '/' || path === route.path || path.startsWith(route.path + '/'));
}

function originAllowed(route, origin) {
  return route.anyOrigin || route.origins.includes(origin) ||
    (route.originRegex !== null && origin.length <= 1024 && route.originRegex.test(origin));
}

// What corsproxy's preflight() refuses for an allowed origin (Fetch "CORS-preflight fetch").
function refusedAsk(route, asked, names, privateNetwork) {
  const method = asked.toUpperCase();
  const badCase = asked !== method && !NORMALIZED_METHODS.includes(method);
  const methodOk = route.anyMethod || route.methods.includes(method) || SAFELISTED_METHODS.includes(method);
  const headerOk = (name) => route.anyHeader || route.headers.includes(name) || SAFELISTED_HEADERS.includes(name);
  return badCase || !methodOk || !names.every(headerOk) || (privateNetwork && !route.privateNetwork);
}

// The API's own Access-Control-* headers never reach the browser, and its Vary is merged.
function sealHeaders(res) {
  const setHeader = res.setHeader;
  res.setHeader = function (name, value) {
    const lower = String(name).toLowerCase();
    if (lower.startsWith('access-control-')) return this;
    if (lower === 'vary' && this.getHeader('Vary')) {
      const tokens = [this.getHeader('Vary'), value].flat().join(',').split(',').map((t) => t.trim()).filter(Boolean);
      return setHeader.call(this, 'Vary', [...new Set(tokens)].join(', '));
    }
    return setHeader.call(this, name, value);
  };
}

function preflight(route, req, res, origin) {
  const asked = req.headers['access-control-request-method'];
  const names = (req.headers['access-control-request-headers'] || '').split(',')
    .map((name) => name.trim().toLowerCase()).filter(Boolean);
  const privateNetwork = (req.headers['access-control-request-private-network'] || '').toLowerCase() === 'true';
  const refused = refusedAsk(route, asked, names, privateNetwork);
  const granted = [...new Set(names.filter((name) => route.anyHeader || route.headers.includes(name) ||
    SAFELISTED_HEADERS.includes(name)))];
  if (granted.length < names.length) {
    granted.push(...route.headers.filter((name) => !granted.includes(name)).sort());
  }
  res.vary(PREFLIGHT_VARY);
  if (privateNetwork && route.privateNetwork) res.setHeader('Access-Control-Allow-Private-Network', 'true');
  // A refused ask still gets 204 with the origin: the browser's console then names what is missing.
  return cors({
    origin: route.anyOrigin && !route.credentials ? '*' : origin,
    credentials: route.credentials,
    methods: route.anyMethod ? [asked.toUpperCase()] : route.methods,
    allowedHeaders: granted,
    maxAge: refused ? 0 : route.maxAge,
    optionsSuccessStatus: 204,
  });
}

function actual(route, origin) {
  return cors({
    origin: route.anyOrigin && !route.credentials ? '*' : origin,
    credentials: route.credentials,
    exposedHeaders: route.expose,
  });
}

module.exports = function corsproxyPolicy(req, res, next) {
  const route = routeFor(req.path);
  if (route === undefined) return next();     // the API's other paths are left alone
  const origin = req.headers.origin;
  const isPreflight = req.method === 'OPTIONS' && origin !== undefined &&
    req.headers['access-control-request-method'] !== undefined;
  const sameOrigin = origin === `${req.protocol}://${req.headers.host}`;
  if (!isPreflight && (origin === undefined || sameOrigin)) {
    if (route.vary) res.vary(route.vary);
    sealHeaders(res);
    return next();
  }
  if (!originAllowed(route, origin)) {
    // Refused before the API runs, and without any Access-Control-Allow-* header.
    res.vary(isPreflight ? PREFLIGHT_VARY : 'Origin');
    res.status(403).type('text/plain').send(route.refusal + '\n');
    return undefined;
  }
  if (isPreflight) return preflight(route, req, res, origin)(req, res, next);
  // cors answers every OPTIONS as a preflight; a plain OPTIONS is an actual request here.
  const asSeenByCors = req.method === 'OPTIONS' ? Object.create(req, { method: { value: 'GET' } }) : req;
  return actual(route, origin)(asSeenByCors, res, (error) => {
    if (route.vary) res.vary(route.vary);
    sealHeaders(res);
    next(error);
  });
};
""" % {"vary": json.dumps(PREFLIGHT_VARY)}
