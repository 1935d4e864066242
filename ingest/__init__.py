"""MQTT to PostgreSQL ingest: decode, validate, dedupe, COPY, dead letters, state, rollups."""
