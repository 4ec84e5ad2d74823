"""What one function-app process builds once and shares between invocations: the Runtime and the Webhook.

Both are built on first use, from the app settings (`Settings.from_env`), under a lock because the Python
worker runs invocations on several threads. The Runtime's store emits a telemetry record for each finished
run recorded in it (telemetry.py). The Runtime's Graph client is itself built only when a use case
first needs it, so a process that only answers webhooks never creates one (I6).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from sync_core.settings import Settings, SettingsError

from .runtime import Runtime
from .telemetry import with_run_telemetry
from .webhook import Webhook

log = logging.getLogger("galsync")


class Process:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None
        self._webhook: Webhook | None = None

    def runtime(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                settings = Settings.from_env(self._env)
                try:
                    logging.getLogger("galsync").setLevel(settings.log_level.upper())
                except ValueError:
                    raise SettingsError(f"GALSYNC_LOG_LEVEL is {settings.log_level!r}; expected DEBUG, INFO, "
                                        "WARNING or ERROR") from None
                rt = Runtime.from_settings(settings)
                rt.store = with_run_telemetry(rt.store, lambda: rt.client.stats.snapshot())
                self._runtime = rt
                log.info("galsync runtime ready: %d profile(s), state %s", len(self._runtime.config.names),
                         settings.state.split(":", 1)[0])
            return self._runtime

    def webhook(self) -> Webhook:
        rt = self.runtime()
        with self._lock:
            if self._webhook is None:
                self._webhook = Webhook(rt.store, rt.settings.tenant_id, rt.config.names, wall_clock=rt.clock)
            return self._webhook

    def reset(self) -> None:
        """Close and forget what was built (the next call builds again from the environment)."""
        with self._lock:
            runtime, self._runtime, self._webhook = self._runtime, None, None
        if runtime is not None:
            runtime.close()
