"""Readers, validation, preparation and the demo generator."""
