"""What a browser would do with any server's answer (pure: no aiohttp, yaml, structlog, asyncio).

Bottom to top: `fetch_headers` (the Access-Control-* names and header-list parsing), `fetch_request`
(what `fetch()` sends and whether it preflights), `remedies` (the fix and the policy that sends it),
`browser` (the CORS and preflight checks, redirects, the verdict). `probe` and the inspector share it.
"""
