"""The dashboard's JSON API: every endpoint and what it answers (docs/dashboard-api.md describes
them for scripts). Handlers only gather views and queue commands; HTTP details live in server.py."""

from __future__ import annotations

from typing import Any

from ..executor.engine import Executor
from ..state.program import PathError
from .chart import ChartSampler
from .commands import Commands
from .evs import evs_view
from .queries import TtlValue, alarms_view, io_inputs, io_view, journal_view, tasks_view
from .routes import ApiError, Request, Router
from .variables import VariableReader, leaf_count, resolve, search

PAGE_LIMIT = 1000
VALUE_LEAF_LIMIT = 2000
MAX_WATCH_PATHS = 200


class DashboardApi:
    def __init__(
        self,
        executor: Executor,
        sampler: ChartSampler,
        *,
        writes_enabled: bool,
        poll_ms: int,
        stats_ttl_s: float,
        io_ttl_s: float = 0.5,
    ) -> None:
        self.executor = executor
        self.sampler = sampler
        self.writes_enabled = writes_enabled
        self.poll_ms = poll_ms
        self.stats = TtlValue(executor.scheduler.stats.to_json, stats_ttl_s)
        self.io = TtlValue(lambda: io_view(executor), io_ttl_s)
        self.commands = Commands(executor)
        self.router = Router()
        self._add_routes()

    def _add_routes(self) -> None:
        add = self.router.add
        add("GET", "/api", self.index, "this list of endpoints")
        add("GET", "/api/info", self.info, "program, tasks, views in use, whether writes are enabled")
        add("GET", "/api/stats", self.get_stats, "scan statistics of every task (TaskStats.to_json layout)")
        add("GET", "/api/tasks", self.get_tasks, "tasks with statistics, watchdog state and programs")
        add("GET", "/api/variables", self.get_variables, "children of ?prefix= (paged) or search ?q=")
        add("GET", "/api/variable", self.get_variable, "one variable ?path= with its value")
        add("GET", "/api/values", self.get_values, "current values of ?path=...&path=... (the watch)")
        add("GET", "/api/evs", self.get_evs, "EV session table ?offset=&limit=")
        add("GET", "/api/io", self.get_io, "drivers, point qualities, inputs that are not GOOD")
        add("GET", "/api/io/inputs", self.get_io_inputs, "bound inputs ?offset=&limit=&quality=")
        add("GET", "/api/alarms", self.get_alarms, "active alarms and recent history ?history=")
        add("GET", "/api/chart", self.get_chart, "chart samples after ?since=<seq>")
        add("GET", "/api/journal", self.get_journal, "forces and recent writes/forces/releases")
        add("POST", "/api/write", self.post_write, "write {path, value} at the next scan", write=True)
        add("POST", "/api/force", self.post_force, "force {path, value} until released", write=True)
        add("POST", "/api/release", self.post_release, "release {path} or {all: true}", write=True)
        add("POST", "/api/stats/reset", self.post_stats_reset, "reset the scan statistics", write=True)
        add("POST", "/api/tasks/<name>/restart", self.post_restart, "restart a faulted task", write=True)

    # ------------------------------------------------------------ reads
    def index(self, request: Request) -> tuple[int, Any]:
        return 200, {"endpoints": self.router.index()}

    def info(self, request: Request) -> tuple[int, Any]:
        program = self.executor.program
        return 200, {
            "program": program.main_file,
            "tasks": [
                {"name": t.name, "interval_ns": t.interval_ns, "priority": t.priority} for t in program.tasks
            ],
            "virtual_time": self.executor.virtual,
            "writes_enabled": self.writes_enabled,
            "poll_ms": self.poll_ms,
            "views": self.sampler.views.to_json(),
            "parameters": dict(self.executor.config.parameters),
        }

    def get_stats(self, request: Request) -> tuple[int, Any]:
        return 200, self.stats.get()

    def get_tasks(self, request: Request) -> tuple[int, Any]:
        return 200, tasks_view(self.executor, self.stats.get(), self.sampler.scanning)

    def _reader(self) -> VariableReader:
        executor = self.executor
        return VariableReader(
            executor.program, executor.state, executor.journal.forces(), executor.clock.now_ns()
        )

    def _node(self, path: str) -> Any:
        try:
            return resolve(self.executor.program, path)
        except PathError as error:
            raise ApiError(404, str(error)) from None

    def get_variables(self, request: Request) -> tuple[int, Any]:
        reader = self._reader()
        limit = request.integer("limit", 200, 1, PAGE_LIMIT)
        query = request.text("q")
        if query:
            hits, truncated = search(self.executor.program, query, limit)
            found = []
            for path, element_matches in hits:
                entry = reader.describe(self._node(path))
                if element_matches:
                    entry["element_matches"] = element_matches
                found.append(entry)
            return 200, {"q": query, "variables": found, "truncated": truncated}
        prefix = request.text("prefix").strip()
        if not prefix:
            roots = reader.roots()
            return 200, {"prefix": "", "total": len(roots), "offset": 0, "variables": roots}
        node = self._node(prefix)
        offset = request.integer("offset", 0, 0, 1 << 31)
        total, children = reader.children(node, offset, limit)
        return 200, {"prefix": node.path, "total": total, "offset": offset, "variables": children}

    def get_variable(self, request: Request) -> tuple[int, Any]:
        path = request.text("path")
        if not path.strip():
            raise ApiError(400, "query parameter 'path' is missing")
        node = self._node(path)
        reader = self._reader()
        out = reader.describe(node)
        if node.type is not None and not node.elementary:
            size = leaf_count(node.type)
            if size > VALUE_LEAF_LIMIT:
                out["value"] = None
                out["value_omitted"] = f"{size} values; list them with /api/variables?prefix={node.path}"
            else:
                out["value"] = reader.value_of(node)
        return 200, out

    def get_values(self, request: Request) -> tuple[int, Any]:
        paths = request.texts("path")
        if len(paths) > MAX_WATCH_PATHS:
            raise ApiError(400, f"at most {MAX_WATCH_PATHS} paths per request, got {len(paths)}")
        reader = self._reader()
        values: dict[str, Any] = {}
        for path in paths:
            try:
                node = resolve(self.executor.program, path)
            except PathError as error:
                values[path] = {"error": str(error)}
                continue
            values[path] = (
                reader.describe(node) if node.elementary else {"error": f"'{node.path}' is not elementary"}
            )
        return 200, {"values": values}

    def get_evs(self, request: Request) -> tuple[int, Any]:
        offset = request.integer("offset", 0, 0, 1 << 31)
        limit = request.integer("limit", 50, 1, PAGE_LIMIT)
        return 200, evs_view(self.executor, self.sampler, offset, limit)

    def get_io(self, request: Request) -> tuple[int, Any]:
        return 200, self.io.get()

    def get_io_inputs(self, request: Request) -> tuple[int, Any]:
        offset = request.integer("offset", 0, 0, 1 << 31)
        limit = request.integer("limit", 100, 1, PAGE_LIMIT)
        quality = request.text("quality")
        if quality and quality.upper() not in ("GOOD", "STALE", "BAD", "COMM_LOST", "UNBOUND"):
            raise ApiError(400, f"quality must be GOOD, STALE, BAD, COMM_LOST or UNBOUND, got '{quality}'")
        return 200, io_inputs(self.executor, offset, limit, quality)

    def get_alarms(self, request: Request) -> tuple[int, Any]:
        return 200, alarms_view(self.executor, request.integer("history", 50, 0, 1000))

    def get_chart(self, request: Request) -> tuple[int, Any]:
        return 200, self.sampler.since(request.integer("since", 0, 0, 1 << 62))

    def get_journal(self, request: Request) -> tuple[int, Any]:
        return 200, journal_view(self.executor, request.integer("limit", 50, 0, 500))

    # ------------------------------------------------------------ commands (token checked by the server)
    def post_write(self, request: Request) -> tuple[int, Any]:
        return 202, self.commands.write(request.body)

    def post_force(self, request: Request) -> tuple[int, Any]:
        return 202, self.commands.force(request.body)

    def post_release(self, request: Request) -> tuple[int, Any]:
        return 202, self.commands.release(request.body)

    def post_stats_reset(self, request: Request) -> tuple[int, Any]:
        return 202, self.commands.reset_stats()

    def post_restart(self, request: Request) -> tuple[int, Any]:
        return 202, self.commands.restart_task(request.params["name"])
