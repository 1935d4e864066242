"""The suvnet edge agent: polls Modbus devices and ships their readings over MQTT.

Runs on a gateway (Raspberry-Pi class) with only the ``edge`` extra installed. Pure parts
(profiles, decode, read planning, command validation) sit inside a thin I/O shell (Modbus
transports, the SQLite outbox, the MQTT link).
"""
