"""probe's fix snippets come from the exporters: what probe suggests for a blocked request is,
block for block, what `corsproxy export` writes for the YAML probe suggests beside it."""

from __future__ import annotations

import re

import pytest

from corsproxy.export import export
from corsproxy.export.snippets import for_remedy
from corsproxy.judge.remedies import remedy
from tests.export.test_static import cli

O = "http://localhost:3000"
_SOURCES = re.compile(r"\([^()\n]*:\d+\)")


def _blocks(text: str) -> list[str]:
    return [block for block in _SOURCES.sub("(file:line)", text).split("\n\n") if block.strip()]


@pytest.mark.parametrize("fix", [remedy(O, True, "PURGE", ["x-b", "Authorization"], "http://127.0.0.1:9000"),
                                 remedy(O, False, "GET", [], "https://api.example.com")],
                         ids=["credentials-method-headers", "plain"])
def test_probe_suggests_what_export_writes(tmp_path, fix) -> None:
    """The nginx and Express snippets for a remedy are blocks of the export of its YAML snippet."""
    snippets = for_remedy(fix)
    yaml = tmp_path / "corsproxy.yaml"
    yaml.write_text(snippets.corsproxy_yaml + "\n")
    for target, snippet in (("nginx", snippets.nginx), ("express", snippets.express)):
        result = cli("--to", target, "-c", str(yaml))
        assert result.returncode == 0, result.stderr
        written = _SOURCES.sub("(file:line)", result.stdout)
        for block in _blocks(snippet):
            kept = "\n".join(line for line in block.splitlines() if not line.startswith("// the route's policy"))
            assert kept in written, kept


def test_a_snippet_passes_the_export_checks() -> None:
    """The nginx snippet is as careful as an export: `always` everywhere, no add_header in if."""
    from tests.export import static
    nginx = for_remedy(remedy(O, True, "PUT", ["authorization"])).nginx
    assert static.nginx_header_problems(nginx) == [] and static.unanchored(nginx, "nginx") == []
    assert export  # the same package writes both


def test_the_inspector_shows_the_same_snippets_as_probe() -> None:
    """The inspector's server-side fix for an upstream's answer is probe's snippet for the same
    remedy, written by the same exporters."""
    import dataclasses

    from corsproxy.server.inspector import _with_snippets
    fix = remedy(O, True, "PUT", ["authorization"], "http://127.0.0.1:9000")
    event = {"upstream_cors": {"remedy": dataclasses.asdict(fix)}}
    assert _with_snippets(event)["upstream_cors"]["snippets"] == dataclasses.asdict(for_remedy(fix))
    assert _with_snippets({"upstream_cors": {"remedy": None}})["upstream_cors"]["snippets"] is None
    assert _with_snippets({"upstream_cors": None})["upstream_cors"] is None
