"""Fixtures shared by the whole suite: the Graph emulator and Azurite, both real servers on this machine."""

pytest_plugins = [
    "graph_emulator.pytest_plugin",
    "tests.azurite",
]
