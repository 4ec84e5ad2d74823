"""`--profile NAME`: the profiles a command runs for, found by name ignoring case.

A name the configuration does not have is a mistake on the command line, not in the file: it is bad usage
(exit 2) that lists the profiles there are, without calling the configuration faulty.
"""

from __future__ import annotations

from sync_core.core.profile import Config

from .advice import BAD_USAGE
from .errors import CliProblem


def chosen_profiles(config: Config, chosen: list[str] | None) -> list[str]:
    """The configured names of the chosen profiles (all of them when none is chosen)."""
    if not chosen:
        return list(config.names)
    by_name = {name.casefold(): name for name in config.names}
    unknown = [name for name in chosen if name.casefold() not in by_name]
    if unknown:
        known = ", ".join(f'"{n}"' for n in config.names)
        raise CliProblem(
            "--profile: no profile named " + ", ".join(f'"{n}"' for n in unknown) + f" in {config.source_name}",
            code=BAD_USAGE, details=(f"its profiles are: {known}",))
    return list(dict.fromkeys(by_name[name.casefold()] for name in chosen))
