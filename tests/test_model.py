"""The prototype model: transformations, bounds, causal streaming == batch."""

import math

import numpy as np
import pytest
import torch
from tiny_model import build_tiny_model, tone

from engine.config import AnalysisConfig
from engine.frontend import log_mel
from engine.model import PrototypeModel, parameter_count
from engine.transformation import PARAMETER_BOUNDS

CONFIG = AnalysisConfig()


def _params(**values: float) -> torch.Tensor:
    order = ["pitch", "gain", "low_freq", "low_gain", "high_freq", "high_gain"]
    return torch.tensor([values.get(name, 0.0) for name in order])


def test_no_transformation_is_an_exact_identity():
    model, _ = build_tiny_model()
    rendered = model.render(torch.zeros(len(model.prototypes), 6))
    assert torch.equal(rendered, model.prototypes.detach())


def test_gain_is_an_exact_level_change():
    model, _ = build_tiny_model()
    rendered = model.transform(model.prototypes[1], _params(gain=0.3))
    torch.testing.assert_close(rendered, model.prototypes[1].detach() + 0.3, rtol=0, atol=1e-6)


def _partial_peaks(frame: np.ndarray, count: int) -> np.ndarray:
    """Band indices of the ``count`` strongest local maxima, in ascending band order."""
    is_peak = (frame[1:-1] > frame[:-2]) & (frame[1:-1] >= frame[2:])
    peaks = np.flatnonzero(is_peak) + 1
    return np.sort(peaks[np.argsort(frame[peaks])[-count:]])


def test_octave_pitch_doubles_partial_frequencies():
    """p = ln 2 (12 semitones) must move each partial to twice its frequency, within one band."""
    frame = torch.from_numpy(log_mel(tone("sawtooth", 220.0, 0.5, 44100), CONFIG).mean(0))
    model = PrototypeModel(1, CONFIG.band_centres_hz)
    with torch.no_grad():
        model.prototypes.copy_(frame[None])
    shifted = model.transform(model.prototypes[0], _params(pitch=math.log(2.0))).detach().numpy()
    centres = CONFIG.band_centres_hz
    for band in _partial_peaks(frame.numpy(), 4):
        if band == 0 or 2 * centres[band] > centres[-1]:
            continue
        target_band = int(np.argmin(np.abs(centres - 2 * centres[band])))
        window = shifted[max(target_band - 2, 0) : target_band + 3]
        found = max(target_band - 2, 0) + int(np.argmax(window))
        assert abs(found - target_band) <= 1, (band, target_band, found)
    # and the fundamental (220 Hz) region now holds the peak that was at 220 Hz, at 440 Hz
    band_220 = int(np.argmin(np.abs(centres - 220.0)))
    band_440 = int(np.argmin(np.abs(centres - 440.0)))
    assert abs(shifted[band_440] - frame.numpy()[band_220]) < 0.02


def test_a_body_stays_at_its_frequencies_when_its_prototype_is_transposed():
    """Render = transposed prototype + body: the body is added after the transposition, so a resonance
    written into it sits in the same bands at any pitch, while the prototype's own partials move."""
    model = PrototypeModel(1, CONFIG.band_centres_hz, bodies=True)
    assert model.bodies.requires_grad and not PrototypeModel(1, CONFIG.band_centres_hz).bodies.requires_grad
    resonance = torch.zeros(CONFIG.n_mels)
    resonance[30:34] = 0.2
    with torch.no_grad():
        model.prototypes.copy_(torch.linspace(0.1, 0.5, CONFIG.n_mels)[None])
        model.bodies.copy_(resonance[None])
    for pitch in (-0.5, 0.0, 0.7):
        params = _params(pitch=pitch)[None]
        without_body = model.transform(model.prototypes, params)
        torch.testing.assert_close(model.render(params) - without_body, resonance[None], rtol=0, atol=1e-6)


def test_weights_from_before_bodies_load_with_zero_bodies():
    model, _ = build_tiny_model()
    older = {name: value for name, value in model.state_dict().items() if name != "bodies"}
    fresh = PrototypeModel(len(model.prototypes), CONFIG.band_centres_hz, channels=32, bodies=True)
    with torch.no_grad():
        fresh.bodies.fill_(1.0)
    fresh.load_state_dict(older)
    assert torch.equal(fresh.bodies, torch.zeros_like(fresh.bodies))
    torch.testing.assert_close(fresh.prototypes, model.prototypes, rtol=0, atol=0)


def test_linear_pitch_mode_is_a_different_transformation():
    model_hz = PrototypeModel(1, CONFIG.band_centres_hz)
    model_linear = PrototypeModel(1, CONFIG.band_centres_hz, pitch_mode="linear")
    ramp = torch.linspace(0.0, 1.0, CONFIG.n_mels)[None]
    with torch.no_grad():
        model_hz.prototypes.copy_(ramp)
        model_linear.prototypes.copy_(ramp)
    params = _params(pitch=0.5)
    hz = model_hz.transform(model_hz.prototypes[0], params)
    assert not torch.allclose(hz, model_linear.transform(model_linear.prototypes[0], params))
    # the linear mode reads band j at j / s: a straight ramp becomes a ramp of slope 1 / s
    linear = model_linear.transform(model_linear.prototypes[0], params).detach()
    slope = (linear[60] - linear[20]) / (ramp[0, 60] - ramp[0, 20])
    assert slope.item() == pytest.approx(math.exp(-0.5), rel=1e-4)


def test_shelves_raise_their_own_end_of_the_spectrum():
    model, _ = build_tiny_model()
    base = model.prototypes[0].detach()
    low = model.transform(model.prototypes[0], _params(low_gain=0.2)).detach() - base
    high = model.transform(model.prototypes[0], _params(high_gain=0.2)).detach() - base
    assert low[0] > 0.19 and low[-1] < 1e-3
    assert high[-1] > 0.19 and high[0] < 1e-3


def test_predicted_parameters_respect_their_bounds():
    model, _ = build_tiny_model(head_std=5.0)
    params, errors = model(torch.rand(2, 40, CONFIG.n_mels))
    assert params.shape == (2, 40, 3, 6) and errors.shape == (2, 40, 3)
    bounds = torch.tensor(PARAMETER_BOUNDS)
    assert (params.abs() <= bounds + 1e-6).all()
    assert (params.abs().amax(dim=(0, 1, 2)) > 0.5 * bounds).all(), "large weights should reach the bounds"


@pytest.mark.parametrize(("dynamic_range_db", "fitted_gain", "fitted_tilt_db", "band_channels"),
                         [(0.0, False, 0.0, 0), (60.0, False, 0.0, 0), (60.0, True, 0.0, 0), (60.0, True, 24.0, 0),
                          (60.0, True, 0.0, 4)])
@pytest.mark.parametrize("lookahead", [0, 3])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_streaming_step_equals_whole_clip(lookahead, chunk, dynamic_range_db, fitted_gain, fitted_tilt_db,
                                          band_channels):
    model, _ = build_tiny_model(lookahead=lookahead, dynamic_range_db=dynamic_range_db, fitted_gain=fitted_gain,
                                fitted_tilt_db=fitted_tilt_db, band_channels=band_channels)
    frames = torch.rand(1, 150, CONFIG.n_mels) * 0.7
    with torch.no_grad():
        batch_params, batch_errors = model(frames)
        model.reset()
        outputs = [model.step(frames[0, i : i + chunk]) for i in range(0, 150, chunk)]
        outputs.append(model.step(torch.zeros(lookahead, CONFIG.n_mels)))  # flush the look-ahead
    params = torch.cat([p for p, _ in outputs])
    errors = torch.cat([e for _, e in outputs])
    torch.testing.assert_close(params, batch_params[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(errors, batch_errors[0], rtol=0, atol=1e-5)


def test_lookahead_beyond_the_receptive_field_is_refused():
    """With L >= the field, frame t's parameters would come from later frames only (t itself unseen)."""
    model, _ = build_tiny_model(lookahead=30)  # the default field is 31 frames: t is the oldest input seen
    assert model.predictor.receptive_field == 31
    with pytest.raises(ValueError, match=r"^lookahead must be 0 to 30 frames \(the predictor sees 31 frames.*got 31$"):
        build_tiny_model(lookahead=31)
    with pytest.raises(ValueError, match=r"^lookahead must be 0 to 30 frames .*got -1$"):
        build_tiny_model(lookahead=-1)


def test_lookahead_delays_the_first_decisions():
    model, _ = build_tiny_model(lookahead=2)
    with torch.no_grad():
        counts = [model.step(torch.rand(1, CONFIG.n_mels))[0].shape[0] for _ in range(4)]
    assert counts == [0, 0, 1, 1]


def test_reset_forgets_the_past():
    model, _ = build_tiny_model()
    frames = torch.rand(20, CONFIG.n_mels)
    with torch.no_grad():
        first = model.step(frames)[0]
        model.step(torch.rand(30, CONFIG.n_mels))
        model.reset()
        again = model.step(frames)[0]
    assert torch.equal(first, again)


def test_reference_size_parameter_count():
    model = PrototypeModel(28, CONFIG.band_centres_hz)
    assert 100_000 < parameter_count(model) < 500_000


@pytest.mark.parametrize("lookahead", [0, 3])
def test_scoring_a_window_equals_slicing_the_whole_clip(lookahead):
    """Training scores the last frames whose look-ahead is inside the crop; the rest is context."""
    model, _ = build_tiny_model(lookahead=lookahead)
    frames = torch.rand(2, 30, CONFIG.n_mels)
    with torch.no_grad():
        params, errors = model(frames)
        window_params, window_errors = model(frames, 8)
    end = 30 - lookahead
    torch.testing.assert_close(window_params, params[:, end - 8 : end])
    torch.testing.assert_close(window_errors, errors[:, end - 8 : end])


def test_floor_raises_only_bands_beyond_the_dynamic_range_and_leaves_silence():
    model = PrototypeModel(1, CONFIG.band_centres_hz, dynamic_range_db=60.0)
    unit_db = 170.0  # one unit of x
    frame = torch.tensor([[0.6, 0.6 - 30 / unit_db, 0.6 - 90 / unit_db, 0.0]])
    floored = model.floored(frame)
    expected = torch.tensor([[0.6, 0.6 - 30 / unit_db, 0.6 - 60 / unit_db, 0.6 - 60 / unit_db]])
    torch.testing.assert_close(floored, expected)
    silence = torch.zeros(2, 4)
    assert torch.equal(model.floored(silence), silence)
    assert torch.equal(PrototypeModel(1, CONFIG.band_centres_hz).floored(frame), frame)  # off by default
    with pytest.raises(ValueError, match="dynamic_range_db"):
        PrototypeModel(1, CONFIG.band_centres_hz, dynamic_range_db=-1.0)


def test_floored_model_compares_floored_frames():
    """Whatever a frame holds below the floor, the errors are those of the floored frame."""
    model, _ = build_tiny_model(dynamic_range_db=40.0)
    frames = torch.rand(1, 30, CONFIG.n_mels) * 0.7
    deeper = frames.clone()
    quiet = deeper < deeper.amax(-1, keepdim=True) - 40.0 / 170.0
    deeper[quiet] = 0.0  # far below the floor: the same frame to a floored model
    with torch.no_grad():
        torch.testing.assert_close(model(deeper)[1], model(frames)[1], rtol=0, atol=1e-6)


def test_fitted_gain_ranks_shapes_and_renders_what_it_measured():
    """With a fitted gain a frame's level changes no error (for the same predicted transformations), the
    returned gains render the reconstruction the errors measure, and a prototype's error is that of its best
    level: below the predicted gain's, never above."""
    model, _ = build_tiny_model(head_std=0.5, fitted_gain=True)
    frames = torch.rand(1, 20, CONFIG.n_mels) * 0.5
    with torch.no_grad():
        params, errors = model(frames)
        _, louder = model.fit(frames + 0.1, params)
        _, predicted = build_tiny_model(head_std=0.5)[0](frames)
        rendered = model.render(params)
        residual = frames.unsqueeze(-2) - rendered
        for shift in (-0.01, 0.01):  # the fitted level is the best one
            assert ((residual + shift).pow(2).mean(-1) > errors).all()
    torch.testing.assert_close(louder, errors, rtol=0, atol=1e-5)
    torch.testing.assert_close(residual.pow(2).mean(-1), errors, rtol=0, atol=1e-5)
    assert (errors <= predicted + 1e-6).all() and (errors < predicted - 1e-4).any()


def test_a_fitted_tilt_leaves_a_tilted_channel_out_of_the_errors_up_to_its_bound():
    """A line across the bands added to every frame (a brighter microphone) changes no error while the fitted
    slope stays within the bound, raises them past it, and the errors are never above those of the same model
    without the tilt."""
    frames = torch.rand(1, 20, CONFIG.n_mels) * 0.5
    line = torch.linspace(-0.5, 0.5, CONFIG.n_mels)
    untilted, _ = build_tiny_model(head_std=0.5, fitted_gain=True)
    with torch.no_grad():
        _, without = untilted(frames)
        for bound_db, change, moves in ((340.0, 0.2, False), (6.0, 0.5, True)):
            model, _ = build_tiny_model(head_std=0.5, fitted_gain=True, fitted_tilt_db=bound_db)
            params, errors = model(frames)
            _, brighter = model.fit(frames + change * line, params)
            _, darker = model.fit(frames - change * line, params)
            assert (errors <= without + 1e-6).all() and (errors < without - 1e-5).any()
            if moves:  # 85 dB across the bands, one way or the other, takes the fit past its 6 dB
                assert (torch.maximum(brighter, darker) > errors + 1e-4).all()
            else:
                torch.testing.assert_close(brighter, errors, rtol=0, atol=1e-5)
                torch.testing.assert_close(darker, errors, rtol=0, atol=1e-5)
