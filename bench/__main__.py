"""`python -m bench`: the whole benchmark suite (bench/run_all.py)."""

from .run_all import main

raise SystemExit(main())
