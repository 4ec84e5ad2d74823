"""`python -m sync_core ...` is the `galsync` command line."""

from sync_core.cli.main import run

if __name__ == "__main__":
    run()
