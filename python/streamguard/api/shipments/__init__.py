"""Shipments: the legs of orders, as carriers and customers see them."""
