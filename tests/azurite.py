"""pytest fixtures for Azurite (filled in by the state store work)."""
