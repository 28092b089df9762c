"""The aiohttp layer: the only place with sockets.

`app` runs the gates in order and turns a `Decision` into a response; `upstream` forwards over one
pooled session and maps I/O errors to 502/504 in one place; `websocket` relays upgrades; `reload`
swaps the config; `serve` runs one process (uvloop, ready line, signals), `workers` N of them;
`logs` configures structlog once.
"""
