"""The idmapguard lab: disposable Podman hosts for integration tests (see docs/lab.md)."""
