"""Carriers: their tariffs and coverage, edited by operators."""
