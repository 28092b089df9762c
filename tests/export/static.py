"""Static checks on exported text, for the bugs production CORS snippets are known for. Each
returns one line per problem (empty: clean); tests/export/test_static.py runs them on every
export and proves each one fails on a planted bug."""

from __future__ import annotations

import re

_NGINX_MAP = re.compile(r'^map "([^"]+)" \$(\w+) \{\n(.*?)^\}', re.M | re.S)
_NGINX_ENTRY = re.compile(r'^\s+"((?:[^"\\]|\\.)*)" (\S+);$', re.M)
_CADDY_MAP = re.compile(r"^\s*map (\S+) \{(\w+)\} \{\n(.*?)^\s*\}", re.M | re.S)
_CADDY_ENTRY = re.compile(r"^\s+(`[^`]*`|\S+) (`[^`]*`|\S+)$", re.M)
_CORS_HEADER = re.compile(r"^\s*add_header\s+(Access-Control-[\w-]+|Vary)\b(.*)$", re.M | re.I)


def _unquote(token: str) -> str:
    if token.startswith("`") and token.endswith("`"):
        return token[1:-1]
    if token.startswith('"') and token.endswith('"'):
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


def maps(text: str, target: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """variable -> (source, [(key, value), ...]) for every map of an nginx or Caddy export."""
    found = {}
    if target == "nginx":
        for source, variable, body in _NGINX_MAP.findall(text):
            entries = [(_unquote(f'"{k}"'), _unquote(v)) for k, v in _NGINX_ENTRY.findall(body)]
            found[variable] = (source, entries)
    else:
        for source, variable, body in _CADDY_MAP.findall(text):
            entries = [(_unquote(k), _unquote(v)) for k, v in _CADDY_ENTRY.findall(body) if k != "default"]
            found[variable] = (_unquote(source), entries)
    return found


def regexes(text: str, target: str) -> list[tuple[str, bool]]:
    """(pattern, matched against the Origin) for every regex the export contains."""
    if target in ("nginx", "caddy"):
        origin_source = "$http_origin" if target == "nginx" else "{http.request.header.Origin}"
        found = [(key.lstrip("~*"), source == origin_source)
                 for source, entries in maps(text, target).values() for key, _ in entries if key.startswith("~")]
        if target == "nginx":
            found += [(p, False) for p in re.findall(r"^\s*location ~\*? (\S+) \{$", text, re.M)]
            found += [(p, False) for p in re.findall(r"^\s*rewrite (\S+) ", text, re.M)]
            found += [(p, False) for p in re.findall(r"^\s*if \(\$\w+ ~\*? (\S+)\) \{$", text, re.M)]
        return [(p.removeprefix("(?i)"), origin) for p, origin in found]
    if target == "express":
        return [(_js_string(p), True) for p in re.findall(r'new RegExp\(("(?:[^"\\]|\\.)*")\)', text)]
    return [(eval(p), True) for p in re.findall(r"re\.compile\(('(?:[^'\\]|\\.)*')\)", text)]  # noqa: S307 (a repr)


def _js_string(literal: str) -> str:
    import json
    return json.loads(literal)


def unanchored(text: str, target: str) -> list[str]:
    """Every regex starts with ^, and one matched against the Origin also ends with $: an
    unanchored `example\\.com$` lets `evilexample.com` in."""
    problems = []
    for pattern, origin in regexes(text, target):
        if not pattern.startswith("^"):
            problems.append(f"regex {pattern!r} is not anchored at its start")
        elif origin and (not pattern.endswith("$") or pattern.endswith("\\$")):
            problems.append(f"origin regex {pattern!r} is not anchored at its end")
    return problems


def wildcard_with_credentials(text: str, target: str) -> list[str]:
    """No policy sends `Access-Control-Allow-Origin: *` together with credentials."""
    problems = []
    if target in ("nginx", "caddy"):
        found = maps(text, target)
        for variable, (_, entries) in found.items():
            if not variable.endswith("_allow_origin"):
                continue
            credentials = found.get(variable.replace("_allow_origin", "_allow_credentials"), ("", []))[1]
            if any(v == "*" for _, v in entries) and any(v == "true" for _, v in credentials):
                problems.append(f"{variable}: '*' together with Access-Control-Allow-Credentials: true")
        return problems
    pattern = (r"anyOrigin: true,\s*credentials: true" if target == "express"
               else r"any_origin=True,\s*credentials=True")
    return [f"a route allows any origin with credentials: {m!r}" for m in re.findall(pattern, text)]


def nginx_header_problems(text: str) -> list[str]:
    """Every CORS `add_header` has `always` (else the API's 4xx/5xx lose it, and every backend
    error reads as a CORS error), and none sits inside an `if` (it would replace the location's)."""
    problems = []
    depth_in_if: list[int] = []
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        if stripped.startswith("if ") and stripped.endswith("{"):
            depth_in_if.append(depth)
        match = _CORS_HEADER.match(line)
        if match and not stripped.startswith("#"):
            if not match.group(2).rstrip().endswith(" always;"):
                problems.append(f"line {number}: add_header {match.group(1)} without always")
            if depth_in_if:
                problems.append(f"line {number}: add_header {match.group(1)} inside if")
        depth += stripped.count("{") - stripped.count("}")
        while depth_in_if and depth <= depth_in_if[-1]:
            depth_in_if.pop()
    return problems


def problems(text: str, target: str) -> list[str]:
    found = unanchored(text, target) + wildcard_with_credentials(text, target)
    if target == "nginx":
        found += nginx_header_problems(text)
    return found
