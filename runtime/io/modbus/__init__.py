"""Modbus TCP client drivers: polling, scaling, SunSpec discovery and setpoint writes off the scan thread."""
