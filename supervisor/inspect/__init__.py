"""Inspection: health snapshots, Prometheus metrics, the HTTP endpoint and its page, the CLI's
views, and logging configuration."""
