"""A synthetic stand-in speech corpus that anyone can render offline: the paper's LibriSpeech row without
LibriSpeech.

    python -m training.data speech --out data/speech

Clearly synthetic: every "speaker" is a speech synthesiser's voice from Debian's packages, espeak-ng (an
accent, a voice variant, its own pitch and rate) or flite (its four 16 kHz voices), reading sentences drawn
from a small grammar.  Each speaker reads different sentences, grouped into chapters, and the corpus is
written in LibriSpeech's layout (``<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac``, 16 kHz mono), so the
speech recipe (``training/configs/speakers.yaml``: ``layout: librispeech``, ``split: chapter``) trains on it
and on a real LibriSpeech tree alike, and no chapter is ever in two splits.  Rendering is deterministic: the
same command gives the same files.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from engine.atomic import replacing, write_text
from training.dataset import OutputError

SAMPLE_RATE = 16000
CHAPTERS = 5
UTTERANCES_PER_CHAPTER = 5
#: espeak-ng's English accents and voice variants; speaker ``i`` takes accent ``i % 7`` and variant ``i % 12``
#: (distinct pairs for the 24 speakers), with its own pitch and rate.
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
ESPEAK_SPEAKERS = 24
FLITE_VOICES = ("awb", "rms", "slt", "kal16")

# A small grammar: "<the|a> <adjective> <noun> <verb> <the|a> <adjective> <noun> <adverb>." and variants.
ADJECTIVES = ("old", "quiet", "bright", "heavy", "narrow", "golden", "broken", "gentle", "distant", "cold", "curious",
              "wooden", "silver", "patient", "empty", "careful", "hidden", "crowded", "simple", "steady")
NOUNS = ("river", "window", "teacher", "garden", "letter", "village", "engine", "basket", "captain", "mountain",
         "kitchen", "doctor", "lantern", "harbour", "market", "bridge", "forest", "painter", "station", "violin",
         "farmer", "library", "island", "carpet", "sailor", "orchard", "clock", "meadow", "pocket", "tower")
VERBS = ("carried", "watched", "followed", "painted", "answered", "opened", "repaired", "remembered", "visited",
         "crossed", "described", "borrowed", "noticed", "protected", "measured", "collected", "finished", "praised")
ADVERBS = ("slowly", "at dawn", "without a word", "before the storm", "every morning", "with great care",
           "after supper", "in the rain", "once again", "near the end of summer", "far from home", "by accident")
OPENINGS = ("", "Yesterday ", "In the evening ", "Long ago ", "Sometimes ", "That winter ", "Later ", "Suddenly ")


class SpeechError(RuntimeError):
    """A synthesiser that is missing or fails; the message says what to install."""


@dataclass(frozen=True)
class SyntheticSpeaker:
    """One synthetic voice: ``engine`` (espeak-ng or flite), its voice, pitch and rate settings."""

    name: str
    engine: str
    voice: str
    pitch: int = 50  # espeak-ng -p (0-99); flite: the mean F0 in Hz
    rate: int = 175  # espeak-ng -s, words per minute; flite: unused

    def command(self, text: str, wav: Path) -> list[str]:
        if self.engine == "espeak-ng":
            return ["espeak-ng", "-v", self.voice, "-p", str(self.pitch), "-s", str(self.rate), "-w", str(wav), text]
        return ["flite", "-voice", self.voice, "--setf", f"int_f0_target_mean={self.pitch}", "-t", text, "-o", str(wav)]


def speakers() -> list[SyntheticSpeaker]:
    """The corpus's 28 speakers, always the same."""
    voices = []
    for i in range(ESPEAK_SPEAKERS):
        accent, variant = ESPEAK_ACCENTS[i % len(ESPEAK_ACCENTS)], ESPEAK_VARIANTS[i % len(ESPEAK_VARIANTS)]
        voices.append(SyntheticSpeaker(f"espeak-{accent}-{variant}", "espeak-ng", f"{accent}+{variant}",
                                       pitch=35 + (13 * i) % 30, rate=150 + (17 * i) % 50))
    pitches = {"awb": 105, "rms": 95, "slt": 175, "kal16": 110}
    voices += [SyntheticSpeaker(f"flite-{voice}", "flite", voice, pitch=pitches[voice]) for voice in FLITE_VOICES]
    return voices


def sentences(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` different sentences from the grammar."""
    made: list[str] = []
    while len(made) < count:
        words = [rng.choice(OPENINGS), "the", rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS),
                 rng.choice(("the", "a")), rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(ADVERBS)]
        sentence = " ".join(word.strip() for word in words if word.strip())
        sentence = sentence[0].upper() + sentence[1:] + "."
        if sentence not in made:
            made.append(sentence)
    return made


def check_synthesisers(voices: list[SyntheticSpeaker]) -> None:
    missing = sorted({voice.engine for voice in voices if shutil.which(voice.engine) is None})
    if missing:
        raise SpeechError(f"{' and '.join(missing)} not found; install with: apt-get install {' '.join(missing)}")


def synthesise(speaker: SyntheticSpeaker, text: str) -> np.ndarray:
    """One sentence in ``speaker``'s voice, 16 kHz mono float32, peak -3 dBFS."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "utterance.wav"
        done = subprocess.run(speaker.command(text, wav), capture_output=True, text=True, check=False)
        if done.returncode != 0 or not wav.exists():
            raise SpeechError(f"{speaker.engine} failed for voice {speaker.voice} ({done.stderr.strip()[:200]})")
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = soxr.resample(audio.mean(axis=1), rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio.mean(axis=1)
    peak = float(np.abs(audio).max())
    return (audio / peak * 10 ** (-3 / 20) if peak > 0 else audio).astype(np.float32)


def utterances(voices: list[SyntheticSpeaker], chapters: int = CHAPTERS,
               per_chapter: int = UTTERANCES_PER_CHAPTER) -> Iterator[tuple[SyntheticSpeaker, int, int, str]]:
    """Every (speaker, chapter, index, sentence) of the corpus: each speaker its own seeded sentences."""
    for number, speaker in enumerate(voices):
        texts = sentences(np.random.default_rng([0x5EEC, number]), chapters * per_chapter)
        for index, text in enumerate(texts):
            yield speaker, index // per_chapter, index % per_chapter, text


def render_corpus(out: Path, voices: list[SyntheticSpeaker] | None = None, chapters: int = CHAPTERS,
                  per_chapter: int = UTTERANCES_PER_CHAPTER, progress: bool = True) -> int:
    """Write the corpus under ``out`` (LibriSpeech layout, with ``SPEAKERS.csv`` and ``transcripts.csv``);
    returns the number of utterances.  Each file is written atomically, so a killed run leaves whole files."""
    voices = voices or speakers()
    check_synthesisers(voices)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot make {out} ({error.strerror})") from None
    jobs = list(utterances(voices, chapters, per_chapter))
    transcripts = []
    for speaker, chapter, index, text in tqdm(jobs, desc="speech", unit="utterance", disable=not progress):
        name = f"{speaker.name}-{chapter}-{index:02d}"
        path = out / speaker.name / str(chapter) / f"{name}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as temporary:
            sf.write(temporary, synthesise(speaker, text), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        transcripts.append((name, text))
    write_table(out / "SPEAKERS.csv", ["speaker", "engine", "voice", "pitch", "rate"],
                [(v.name, v.engine, v.voice, v.pitch, v.rate) for v in voices])
    write_table(out / "transcripts.csv", ["utterance", "text"], transcripts)
    write_text(out / "SYNTHETIC.txt", "Synthetic speech, not recordings: every speaker is a voice of espeak-ng or "
               "flite (SPEAKERS.csv) reading sentences from a grammar (transcripts.csv); rendered by "
               "python -m training.data speech.\n")
    return len(jobs)


def write_table(path: Path, header: list[str], rows: list[tuple]) -> None:
    with replacing(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
