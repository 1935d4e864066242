"""Grafana dashboards as code, provisioning files, the push command and the MQTT broker ACL.

The dashboards are written with the small typed builders of :mod:`dashboards.model` and turned
into Grafana's JSON by ``suvnet dashboards build``; ``suvnet dashboards push`` upserts them into
a running Grafana. ``suvnet mqtt acl`` writes Mosquitto's password and ACL files from the
gateway registry.
"""
