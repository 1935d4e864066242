"""suvnet: telemetry, SCADA monitoring and billing for a village drinking-water utility.

This package is the shared core: settings, database access and migrations, the MQTT wire
protocol, the network/device registry and the ``suvnet`` command line. Every other package
(edge_agent, ingest, billing, alarms, api, dashboards, simulator) may import it; it imports
none of them.
"""

__version__ = "0.1.0"
