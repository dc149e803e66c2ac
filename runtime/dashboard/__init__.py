"""Scan-time diagnostics dashboard served by the runtime itself.

server = DashboardServer(executor, port=0, token="secret")  # views found in the program
server.start(); print(server.url); ...; server.stop()
"""

from .server import DashboardServer
from .views import DashboardViews, ResolvedViews, ViewError

__all__ = ["DashboardServer", "DashboardViews", "ResolvedViews", "ViewError"]
