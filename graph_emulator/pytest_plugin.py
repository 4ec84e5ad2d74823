"""pytest fixtures for the Graph emulator (filled in by the emulator server work)."""
