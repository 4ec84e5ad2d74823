"""Entry point of the `galsync` console script (and of `python -m sync_core`)."""

from __future__ import annotations

from .app import app


def run() -> None:
    app(prog_name="galsync")


if __name__ == "__main__":
    run()
