"""Shared pytest fixtures."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator

import pytest

# --- JACK server fixture (live audio path, see docs/design.md section 4) ----------------------------
from jack_server import INSTALL_HINT, JackServer, JackUnavailable, start_jack_server

# A shell starts a background job (``.ci/run &``) with SIGINT ignored, and Python keeps an ignored SIGINT
# ignored, in this process and in the engines the tests start: the Ctrl-C tests would then wait out their runs.
# Ctrl-C is what they test, so SIGINT raises KeyboardInterrupt here however the suite was launched.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def jack_server(request: pytest.FixtureRequest) -> Iterator[JackServer]:
    """A private jackd (dummy backend, real time) for one test module, stopped even if tests fail.

    Defaults to 48 kHz / 256-frame periods, real-time scheduling where permitted; override per module
    with ``@pytest.mark.parametrize("jack_server", [{"period": 128, "realtime": False}], indirect=True)``.
    Sets ``JACK_DEFAULT_SERVER`` so every JACK client in this process (PortAudio's included) reaches
    this server.  Skips, loudly (skip reason plus a warning, since pytest hides skip reasons by
    default), only when jackd cannot start.
    """
    options = getattr(request, "param", {})
    try:
        server = start_jack_server(**options)
    except JackUnavailable as exc:
        reason = f"JACK live-audio tests SKIPPED: {exc} -- {INSTALL_HINT}"
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    with server.as_default():
        yield server
# --- end of JACK server fixture ---------------------------------------------------------------------
