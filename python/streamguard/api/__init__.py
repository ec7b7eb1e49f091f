"""The control plane's HTTP API (Litestar): one package per domain over streamguard.domain."""
