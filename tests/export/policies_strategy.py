"""Hypothesis: small random policies (at most 3 routes and 3 origins, an optional regex from a
safe grammar) as YAML, for the nginx and Starlette suites."""

from __future__ import annotations

from hypothesis import strategies as st

ORIGINS = ("http://localhost:3000", "https://app.example.com", "http://127.0.0.1:8081", "https://a.test")
PREFIXES = ("/api", "/api/v2", "/svc", "/")
HEADERS = ("Content-Type", "Authorization", "X-Custom")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

regexes = st.builds(lambda scheme, label, domain: f"^{scheme}://{label}\\.{domain}$",
                    st.sampled_from(("https", "http")),
                    st.sampled_from(("[a-z0-9-]+", "(app|admin)", "[a-z]{2,8}")),
                    st.sampled_from(("example\\.com", "preview\\.test")))


@st.composite
def cors_blocks(draw) -> str:
    credentials = draw(st.booleans())
    any_origin = not credentials and draw(st.integers(0, 4)) == 0
    lines = ["allow_origins: " + ('["*"]' if any_origin else
                                  str(draw(st.lists(st.sampled_from(ORIGINS), max_size=3, unique=True))))]
    if not any_origin and draw(st.booleans()):
        lines.append(f"allow_origin_regex: '{draw(regexes)}'")
    lines.append("allow_methods: " + ('["*"]' if draw(st.integers(0, 3)) == 0 else
                                      str(draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True)))))
    lines.append("allow_headers: " + ('["*"]' if draw(st.integers(0, 3)) == 0 else
                                      str(draw(st.lists(st.sampled_from(HEADERS), max_size=2, unique=True)))))
    lines.append(f"allow_credentials: {str(credentials).lower()}")
    if draw(st.booleans()):
        lines.append("expose_headers: [X-Request-Id]")
    lines.append(f"allow_private_network: {str(draw(st.booleans())).lower()}")
    lines.append(f"max_age: {draw(st.sampled_from((0, 60, 600)))}")
    return "{" + ", ".join(lines) + "}"


@st.composite
def policies(draw) -> str:
    """A whole YAML file; STUB stands for the stub API's address."""
    prefixes = draw(st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=3, unique=True))
    lines = [f"cors: {draw(cors_blocks())}", "routes:"]
    for prefix in prefixes:
        base = draw(st.sampled_from(("", "/v1")))
        lines += [f"  - prefix: {prefix}", f"    upstream: http://STUB{base}",
                  f"    strip_prefix: {str(draw(st.booleans())).lower()}", "    timeout: 2",
                  f"    cors: {draw(cors_blocks())}"]
    return "\n".join(lines) + "\n"
