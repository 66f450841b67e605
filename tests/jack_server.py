"""The test suite's JACK server helpers, from :mod:`benchmarks.jackrig.server` (benchmarks use them too)."""

from benchmarks.jackrig.server import INSTALL_HINT, JackServer, JackUnavailable, realtime_permitted, start_jack_server

__all__ = ["INSTALL_HINT", "JackServer", "JackUnavailable", "realtime_permitted", "start_jack_server"]
