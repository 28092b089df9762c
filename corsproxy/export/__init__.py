"""Config -> the configuration of the server that should own the policy (pure).

`plan` decides once what every target writes (routes in match order, header values, refusals);
one module per target turns the plan into text, one builder per block, each block under a
comment naming its route and `file:line`:

- `nginx`, `caddy`: gateways that reproduce the proxy itself, on its paths and address;
- `express`, `starlette`: the policy inside the API, on the API's own paths.

`export()` returns the text and the deviations (behaviour a target cannot reproduce exactly);
`corsproxy.commands.export` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

from corsproxy.export import caddy, express, nginx, starlette
from corsproxy.export.plan import Deviation, Plan, app_plan, gateway_plan
from corsproxy.model import Config

GATEWAYS = {"nginx": nginx, "caddy": caddy}
APPS = {"express": express, "starlette": starlette}
TARGETS = (*GATEWAYS, *APPS)


@dataclass(frozen=True, slots=True)
class Exported:
    target: str
    text: str
    deviations: tuple[Deviation, ...]


def export(config: Config, target: str, *, listen: tuple[str, int] | None = None,
           upstream: str | None = None) -> Exported:
    """The target's configuration for `config`. Raises ConfigError (exit 2) for what the target
    cannot express without changing a browser's verdict."""
    if target in GATEWAYS:
        module = GATEWAYS[target]
        plan = gateway_plan(config, target, listen)
    else:
        module = APPS[target]
        plan = app_plan(config, target, upstream)
    plan = _with_deviations(plan, module.DEVIATIONS)
    return Exported(target, module.render(plan), plan.deviations)


def _with_deviations(plan: Plan, deviations: tuple[Deviation, ...]) -> Plan:
    from dataclasses import replace
    return replace(plan, deviations=deviations)
