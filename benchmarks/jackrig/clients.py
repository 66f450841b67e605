"""A JACK client that plays a signal into the engine and records what comes back, for tests and benchmarks.

With a private JACK server (:mod:`benchmarks.jackrig.server`) and PortAudio re-scanned onto it
(:func:`portaudio_on_jack`), the engine's duplex stream appears as the JACK client ``protophone``
(:data:`realtime.audio.DEFAULT_CLIENT_NAME`, or the name it was given).  :class:`JackPatch` connects itself to
that client's input and first output ports, plays a signal (once or
on a loop) and records the engine's output into a preallocated buffer, counting the server's xruns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from benchmarks.jackrig.server import JackServer
from realtime.audio import name_jack_client, refresh_portaudio, release_portaudio
from realtime.devicemode import DEFAULT_CLIENT_NAME


@contextmanager
def portaudio_on_jack(server: JackServer) -> Iterator[JackServer]:
    """PortAudio re-scanned to see ``server``; on exit PortAudio lets go of it *before* the server stops
    (else PortAudio aborts the process at exit), the server stops, and PortAudio re-scans the machine."""
    try:
        with server.as_default():
            name_jack_client(DEFAULT_CLIENT_NAME)
            refresh_portaudio()
            try:
                yield server
            finally:
                release_portaudio()  # before the server stops; raises if a stream's stop never ended
    finally:
        refresh_portaudio()


class JackPatch:
    """Plays ``signal`` into the engine's input and records ``record_samples`` of its output once armed.

    Player and recorder are two JACK clients: one client with ports on both sides of the engine would
    form a cycle in JACK's processing graph, which JACK cannot order.
    """

    def __init__(self, signal: np.ndarray, record_samples: int = 0, loop: bool = False,
                 engine_client: str = DEFAULT_CLIENT_NAME) -> None:
        import jack  # JACK-Client is a test/benchmark dependency only

        self.player = jack.Client("protophone-player", no_start_server=True)
        self.recorder = jack.Client("protophone-recorder", no_start_server=True)
        self.out_port = self.player.outports.register("out")
        self.in_port = self.recorder.inports.register("in")
        self.engine_client = engine_client
        self.signal = signal.astype(np.float32)
        self.loop = loop
        self.recording = np.zeros(record_samples, dtype=np.float32)
        self.armed = False
        self.xrun_clock_s: list[float] = []  # time.monotonic() of each xrun the server reported
        self._played = self._recorded = 0
        self.player.set_process_callback(self._play)
        self.recorder.set_process_callback(self._record)
        self.recorder.set_xrun_callback(self._xrun)
        self.player.activate()
        self.recorder.activate()

    def engine_ports(self) -> tuple[list, list]:
        """The engine's (PortAudio's) input and output ports, in channel order."""
        ports = self.player.get_ports(f"{self.engine_client}:", is_audio=True)
        return [p for p in ports if p.is_input], [p for p in ports if p.is_output]

    def connect_to_engine(self, timeout_s: float = 10.0, input_channel: int = 1) -> None:
        """Wait for the engine's ports, then replace PortAudio's auto-connections to its ``input_channel``
        (from 1) and first output with these clients."""
        deadline = time.monotonic() + timeout_s
        inputs, outputs = self.engine_ports()
        while not (inputs and outputs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {self.engine_client} ports after {timeout_s} s: {self.player.get_ports()}")
            time.sleep(0.05)
            inputs, outputs = self.engine_ports()
        engine_input = inputs[input_channel - 1]
        for source in self.player.get_all_connections(engine_input):
            self.player.disconnect(source, engine_input)
        self.player.connect(self.out_port, engine_input)
        self.recorder.connect(outputs[0], self.in_port)

    @property
    def recorded(self) -> bool:
        return self._recorded >= len(self.recording)

    def close(self) -> None:
        for client in (self.player, self.recorder):
            client.deactivate()
            client.close()

    @property
    def xruns(self) -> int:
        return len(self.xrun_clock_s)

    def _xrun(self, delayed_usecs: float) -> None:
        self.xrun_clock_s.append(time.monotonic())  # JACK's notification thread, not the process callback

    def _play(self, frames: int) -> None:
        out = self.out_port.get_array()
        out.fill(0.0)
        if not self.armed:
            return
        position = self._played % len(self.signal) if self.loop else self._played
        chunk = self.signal[position : position + frames]
        out[: len(chunk)] = chunk
        if self.loop and len(chunk) < frames:
            out[len(chunk) :] = self.signal[: frames - len(chunk)]
        self._played += frames

    def _record(self, frames: int) -> None:
        n = min(frames, len(self.recording) - self._recorded)
        if self.armed and n > 0:
            self.recording[self._recorded : self._recorded + n] = self.in_port.get_array()[:n]
            self._recorded += n
