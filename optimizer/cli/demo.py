"""``cascade demo``: the main job on the bundled defaults."""

from __future__ import annotations

from ._app import cli


@cli.command("demo")
def demo_cmd() -> None:
    """Run the main job on the bundled defaults and print its result."""
    from ..demo import run_demo

    run_demo()


