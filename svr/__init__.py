"""Single-view 3D reconstruction: benchmark data, geometry, metrics, models and inference.

`svr` never imports `leaderboard`; the leaderboard builds on `svr.metrics`,
`svr.geometry` and `svr.io`.
"""

__version__ = "0.1.0"
