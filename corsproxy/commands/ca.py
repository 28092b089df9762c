"""The `ca` command: the persistent intercept CA of this user (`init`, `show`, `remove`).

`init -c PATH` makes a CA whose name constraints permit exactly the intercepted hosts of that
config, in `$XDG_DATA_HOME/corsproxy/` (never inside the project: the key would be one
`git add .` away from a repository). `check` and `show` say when a config lists a host the CA
does not permit; a host-list change then needs `remove` and `init` again.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from corsproxy.errors import StoreError
from corsproxy.model import Config
from corsproxy.server.intercept import load_ca

if TYPE_CHECKING:
    from corsproxy.server.ca import Store

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("init", "show", "remove"),
                        help="init: make the CA for the config's intercept hosts; show: where it is and what "
                             "it permits; remove: delete it")


def run(args: argparse.Namespace, config: Config | None, path: Path | None) -> int:
    try:
        store = load_ca().Store.for_user()
        if args.action == "init":
            return _init(store, config, path)
        if args.action == "show":
            return _show(store, config)
    except StoreError as exc:
        print(f"corsproxy ca: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    removed = store.remove()
    print(f"removed the CA in {store.directory}" if removed else f"no CA in {store.directory}")
    return EXIT_OK


def _init(store: Store, config: Config | None, path: Path | None) -> int:
    if config is None or config.intercept is None:
        print("corsproxy ca: the config has no intercept block; the CA is made for its hosts "
              "(see README: When you cannot change the URL)", file=sys.stderr)
        return EXIT_USAGE
    store.refuse_inside(project_roots(path))
    authority = store.create(config.intercept.names)
    print(f"made a CA for {', '.join(config.intercept.names)} in {store.directory} (key mode 0600)")
    print(f"CA SPKI sha256: {authority.spki}")
    print("set `ca: persistent` in the intercept block to use it")
    return EXIT_OK


def _show(store: Store, config: Config | None) -> int:
    authority = store.load()
    print(f"directory: {store.directory}")
    print(f"certificate: {store.cert_file}")
    print(f"permits: {', '.join(load_ca().permitted_names(authority.cert)) or '(nothing)'}")
    print(f"expires: {authority.cert.not_valid_after_utc:%Y-%m-%d}")
    print(f"CA SPKI sha256: {authority.spki}")
    for warning in store_warnings(config, store):
        print(f"warning: {warning}")
    return EXIT_OK


def store_warnings(config: Config | None, store: Store | None = None) -> list[str]:
    """For `check`: hosts of a `ca: persistent` config the user's CA does not permit."""
    intercept = config.intercept if config else None
    if intercept is None or intercept.ca != "persistent":
        return []
    try:
        ca = load_ca()
        store = store or ca.Store.for_user()
        cert = store.load().cert
    except StoreError as exc:
        return [f"{intercept.source}: intercept.ca is persistent, but {exc}"]
    return [f"{entry.source}: the persistent CA in {store.directory} does not permit {entry.host}, so its "
            "certificate would break the CA's name constraints; run 'corsproxy ca remove' and "
            "'corsproxy ca init -c PATH' to make one for this config's hosts"
            for entry in intercept.hosts if not ca.permits(cert, entry.host)]


def project_roots(config_path: Path | None) -> list[Path]:
    """The trees the key must stay out of: the repository (a folder with .git) around the config
    and around the current directory, and the config's folder unless it is the home folder
    (or above it), where ~/.local/share lives."""
    home = Path.home().absolute()
    roots = []
    for start in (config_path, Path.cwd()):
        if start is None:
            continue
        folder = Path(os.path.abspath(start))
        folder = folder if folder.is_dir() else folder.parent
        if start is config_path and folder != home and folder not in home.parents:
            roots.append(folder)
        roots += [parent for parent in (folder, *folder.parents) if (parent / ".git").exists()][:1]
    return roots
