"""galsync's benchmarks: scripts that print numbers (never timed tests). `python -m bench` runs the suite."""
