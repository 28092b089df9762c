"""YAML (or `serve` flags) -> a validated, frozen `Config`; no aiohttp, nothing async.

Bottom to top: `yamldoc` reads a file with a line for every node and interpolates `${VAR}`;
`values` checks one value; `loader` knows which keys each block holds and merges files into one
Config; `risks` finds what is legal but unwise. Every problem is collected, never the first alone.
"""

from corsproxy.config.loader import QUICK_HEADERS, QUICK_ORIGINS, from_flags, load, policy_values, route_rows

__all__ = ["QUICK_HEADERS", "QUICK_ORIGINS", "from_flags", "load", "policy_values", "route_rows"]
