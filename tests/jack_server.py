"""The test suite's JACK server helpers; they live in :mod:`realtime.jackserver` so benchmarks can use them too."""

from realtime.jackserver import INSTALL_HINT, JackServer, JackUnavailable, realtime_permitted, start_jack_server

__all__ = ["INSTALL_HINT", "JackServer", "JackUnavailable", "realtime_permitted", "start_jack_server"]
