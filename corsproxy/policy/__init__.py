"""What the proxy decides, as pure functions of frozen values (no aiohttp, yaml, structlog, asyncio).

`origins` parses and compares origins and `Host`s; `cors` turns a policy and a request's facts into
a `Decision` (the Fetch Standard's CORS protocol, seen from the server); `routing` normalises a
path and finds its route; `rewrite` computes the headers sent up and the headers sent back.
"""
