"""Turn what goes wrong with audio devices into one line a performer can act on.

PortAudio reports problems as terse codes ("Invalid sample rate [PaErrorCode -9997]") and sounddevice
fails at *import* when the PortAudio library is missing.  The command line shows neither raw: it says
what happened and what to type next.  File mode never imports sounddevice, so it keeps working on a
machine without PortAudio or a sound card.
"""

from __future__ import annotations

from types import ModuleType

from engine.errors import ProtophoneError

NO_DEVICE_HINT = "to try Protophone without a sound card: --input demo --output out.wav"


class AudioDeviceError(ProtophoneError):
    """An audio device (or the PortAudio library) that cannot be used as asked."""


def audio_module() -> ModuleType:
    """``realtime.audio``, imported on first use; a missing PortAudio library becomes a one-line hint."""
    try:
        from realtime import audio  # sounddevice loads libportaudio at import
    except OSError as error:
        raise AudioDeviceError(
            f"the PortAudio library is missing ({error}); install it with: apt-get install libportaudio2"
        ) from None
    return audio


def device_not_found(error: ValueError) -> AudioDeviceError:
    """A device that does not exist: list what does, or, when nothing does, point at file mode."""
    message = str(error)
    if "none (is an audio server running?)" in message:
        return AudioDeviceError(f"no audio device found (is a sound card connected or an audio server "
                                f"such as JACK running? see --list-devices); {NO_DEVICE_HINT}")
    return AudioDeviceError(message)


def stream_failed(error: Exception, sample_rate: int, device: object) -> AudioDeviceError:
    """A stream that would not open or died: name the device and the likely fix."""
    text = str(error)
    if "sample rate" in text.lower():
        default = getattr(device, "default_samplerate", None)
        fix = f"leave out --sample-rate to use its default ({default:g} Hz)" if default else "try 48000 or 44100"
        return AudioDeviceError(f"sample rate {sample_rate} Hz is not supported by {device}; {fix}")
    return AudioDeviceError(f"audio stream on {device} failed ({text}); check the device with --list-devices")
