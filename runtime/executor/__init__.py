"""Deterministic scan-cycle executor: clocks, tasks, process image, watchdog, statistics, retain."""
