"""Drift monitoring: compare a reference window with a current window and decide on retraining.

`python -m monitoring report` writes an Evidently HTML report, a JSON summary and plain lines
under `monitoring/reports/<date>/`. Evidently is imported only by `monitoring.report`, so the
checks and the decision can be used without it.
"""
