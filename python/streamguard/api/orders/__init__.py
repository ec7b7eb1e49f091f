"""Repair orders: intake, reading, moving, timeline, photos."""
