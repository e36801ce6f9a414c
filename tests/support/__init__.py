"""Test helpers shared by unit and integration tests (real Prometheus, fake Datadog)."""
