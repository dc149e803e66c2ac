"""I/O drivers (Modbus, MQTT, EV sessions, simulation) and the site configuration."""
