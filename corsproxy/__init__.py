"""corsproxy: a local CORS dev proxy.

The folders are the layers, bottom to top; a module imports only from its own level or below
(tests/test_layering.py checks it):

- `model`, `errors`: the frozen vocabulary (CorsPolicy, Route, Config, RequestFacts, Decision)
  and the exception tree. Standard library only.
- `policy/`: what the proxy decides: origins, the CORS decision, routing, header rewriting. Pure.
- `judge/`: what a browser would do with any server's answer (the Fetch Standard's checks). Pure.
- `config/`: YAML with a line for every node -> checked values -> a frozen Config.
- `server/`: the aiohttp layer: gates, forwarding, WebSockets, reload, processes, logs.
- `commands/`: one module per sub-command's I/O (probe, demo).
- `cli`, `__main__`: argparse; `main(argv)` returns the exit code.
"""

__version__ = "0.1.0"
