"""How an executor is set up: watchdog per task, retain file, required inputs, safe-value overrides.

Its own module so that the executor and the online change (which checks a new program against the
same configuration) both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .watchdog import WatchdogConfig


@dataclass
class ExecutorConfig:
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    watchdog_per_task: dict[str, WatchdogConfig] = field(default_factory=dict)
    retain_path: str | None = None
    retain_key: bytes | None = None  # MAC key of the retain file (retain_store.py), 32+ bytes
    retain_interval_s: float = 1.0
    required_inputs: set[str] = field(default_factory=set)
    safe_overrides: dict[str, object] = field(default_factory=dict)
    loop_budget: int = 2_000_000  # WHILE/REPEAT iterations per scan before a virtual-time abort
    # program parameters (path -> checked value) written at start, after RETAIN, and after every online
    # change: the site file's [parameters] and --set (plcrun.io.site_parameters)
    parameters: dict[str, object] = field(default_factory=dict)
