"""The aiohttp layer: the only place with sockets.

`app` runs the gates in order and turns a `Decision` into a response; `inline` answers a cached
preflight straight from the protocol, with the same gates, from `heads`' serialised answers;
`upstream` forwards and maps I/O errors to 502/504 in one place, over `roundtrip`'s keep-alive
pool (aiohttp's client protocol) for plain requests and aiohttp's session for `websocket`
upgrades; `coalesce` holds a connection's small writes to the end of the loop's turn; `reload`
swaps the config; `serve` runs one process (uvloop, ready line, signals), `workers` N of them;
`memory` tunes malloc and the collector for a long-running process; `logs` configures structlog
once and writes the request line.
"""
