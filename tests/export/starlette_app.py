"""The export suite's Starlette API: a recording stub that answers 200, 404 or an unhandled
exception (Starlette's own 500), with CORS headers and a Vary of its own, wrapped by the
exported module's `install(app)`. uvicorn runs `make` as a factory; $CORSPROXY_EXPORTED names
the exported file."""

from __future__ import annotations

import importlib.util
import os
import sys

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.export.stub import ID_HEADER, STUB_CORS, STUB_VARY

REACHED: set[str] = set()


async def reached(request) -> JSONResponse:
    return JSONResponse(sorted(REACHED))


async def stub(scope, receive, send) -> None:
    headers = dict((k.decode().lower(), v.decode()) for k, v in scope["headers"])
    if ID_HEADER.lower() in headers:
        REACHED.add(headers[ID_HEADER.lower()])
    path = scope["path"]
    if path.endswith("/status/500"):
        raise RuntimeError("the stub fails on purpose")
    response = JSONResponse({"stub": True}, status_code=404 if path.endswith("/status/404") else 200,
                            headers={**dict(STUB_CORS), "Vary": STUB_VARY})
    await response(scope, receive, send)


def make() -> Starlette:
    spec = importlib.util.spec_from_file_location("exported_policy", os.environ["CORSPROXY_EXPORTED"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # as a plain `import` would
    spec.loader.exec_module(module)
    app = Starlette(routes=[Route("/__stub/reached", reached)])
    app.router.default = stub
    return module.install(app)
