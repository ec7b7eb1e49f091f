"""The control plane's pure logic: orders, shipments, sign-offs, principals.

Nothing here imports Litestar, NATS or ClickHouse: the API (``streamguard.api``) and the bus
(``streamguard.bus``) call into it, and its tests need neither a server nor a broker.
"""
