"""A/B pilot toolkit: plan, assignment checks, simulation and readout of the recommendation pilot.

The pilot is independent of the recommender. It shares only `bookrecs.assignment` with the
service and reads the service's SQLite impression log.
"""
