"""Simulated field devices: Modbus servers (pymodbus) that answer with a profile's register map.

:class:`~simulator.devices.SimulatedDevice` holds one device's registers and lets other code
feed values in (``set_value``); :class:`~simulator.server.SimServer` serves devices over Modbus
TCP or RTU (a serial port or pty).
"""
