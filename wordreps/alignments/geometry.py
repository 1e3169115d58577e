"""Frame geometry of a model: where each output frame sits in the waveform.

A frame ``t`` of a model with hop ``H`` samples and receptive field ``R`` samples covers samples
``[t*H, t*H + R)``; its centre is at ``(t*H + R/2) / sample_rate_hz`` seconds. See
``wordreps/alignments/frames.py`` for how words are mapped to frames.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from wordreps.common.errors import UserError


@dataclass(frozen=True)
class FrameGeometry:
    sample_rate_hz: int
    hop_samples: int
    receptive_field_samples: int

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop_samples

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate_hz

    def frame_centre_s(self, t: int) -> float:
        return (t * self.hop_samples + self.receptive_field_samples / 2) / self.sample_rate_hz

    def num_frames(self, num_samples: int) -> int:
        """Frames a valid (unpadded) convolution stack produces for ``num_samples`` samples (at least 1)."""
        if num_samples <= self.receptive_field_samples:
            return 1
        return (num_samples - self.receptive_field_samples) // self.hop_samples + 1

    def describe(self) -> str:
        """One line for messages: "16000 Hz, hop 320 samples (20 ms), receptive field 400 samples"."""
        ms = f"{1000 * self.hop_samples / self.sample_rate_hz:.3f}".rstrip("0").rstrip(".")
        return (f"{self.sample_rate_hz} Hz, hop {self.hop_samples} samples ({ms} ms), "
                f"receptive field {self.receptive_field_samples} samples")

    def cli_flags(self) -> str:
        """The alignments_and_trans.py flags that make exactly this geometry."""
        return (f"--sample_rate {format_number(self.sample_rate_hz / 1000)} --hop_samples {self.hop_samples} "
                f"--receptive_field {self.receptive_field_samples}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrameGeometry":
        return cls(int(d["sample_rate_hz"]), int(d["hop_samples"]), int(d["receptive_field_samples"]))


# ------------------------------------------------------------------------------------------------ registry
#
# How a geometry is named on the command line of alignments/alignments_and_trans.py:
#   --model NAME                      a known model (the family table, embeddings/families.py)
#   --stride MS --sample_rate KHZ     hop = MS * KHZ samples, accepted when within 0.5 % of an integer
#                                     (13.33 ms at 24 kHz = 319.92 -> 320); otherwise refused
#   --frame_rate HZ --sample_rate KHZ hop = 1000 * KHZ / HZ samples, which must be an integer
#   --hop_samples N --sample_rate KHZ the hop itself
# --receptive_field N sets R with any of the last three. Without it, R defaults to 400 samples when the
# geometry is 16 kHz with a hop of 320 (the wav2vec2/HuBERT/WavLM conv stack: kernels (10,3,3,3,3,2,2),
# strides (5,2,2,2,2,2,2) -> 25 ms windows every 20 ms), and otherwise to the hop (frames that tile the
# signal without overlap). R only moves frame centres (by R/2), never the hop.

def geometry_for_model(name: str) -> FrameGeometry:
    """The geometry a model name implies: the family table's (``wordreps.embeddings.families``), which is
    where every model family's names and frame geometry are kept."""
    from wordreps.embeddings.families import geometry_for_model as lookup

    return lookup(name)


def sample_rate_hz_from_khz(sample_rate_khz: float) -> int:
    """16 -> 16000, 22.05 -> 22050; refuses rates that are not a whole number of Hz."""
    hz = sample_rate_khz * 1000
    if abs(hz - round(hz)) > 1e-6 or round(hz) <= 0:
        raise UserError(f"--sample_rate {format_number(sample_rate_khz)} kHz is not a whole number of Hz; "
                        "give it in kHz, e.g. 16 or 24")
    return int(round(hz))


def default_receptive_field(sample_rate_hz: int, hop_samples: int) -> int:
    """R when only a hop is known: the wav2vec2 conv stack's 400 at 16 kHz / hop 320, else the hop."""
    if sample_rate_hz == 16000 and hop_samples == 320:
        return 400
    return hop_samples


HOP_TOLERANCE = 0.005  # a stride in ms may miss an integer hop by at most 0.5 % (13.33 ms * 24 kHz = 319.92)


def hop_from_stride(stride_ms: float, sample_rate_hz: int) -> int:
    """Hop in samples for a stride in ms; refuses a stride that is not (nearly) a whole number of samples."""
    exact = stride_ms * sample_rate_hz / 1000
    hop = int(round(exact))
    if hop < 1 or abs(exact - hop) > HOP_TOLERANCE * hop:
        raise UserError(
            f"--stride {format_number(stride_ms)} ms at {sample_rate_hz} Hz is {exact:.4g} samples, not within "
            f"0.5% of a whole number of samples; give the geometry exactly with --frame_rate (frames per second) "
            f"or --hop_samples")
    return hop


def hop_from_frame_rate(frame_rate_hz: float, sample_rate_hz: int) -> int:
    """Hop in samples for an exact frame rate; refuses a rate that does not divide the sample rate."""
    exact = sample_rate_hz / frame_rate_hz
    hop = int(round(exact))
    if hop < 1 or abs(exact - hop) > 1e-9 * max(1.0, exact):
        raise UserError(
            f"--frame_rate {format_number(frame_rate_hz)} Hz at {sample_rate_hz} Hz gives {exact:.6g} samples per "
            f"frame, not a whole number; give --hop_samples instead")
    return hop


def resolve_geometry(*, model: str | None = None, stride_ms: float | None = None,
                     frame_rate_hz: float | None = None, hop_samples: int | None = None,
                     receptive_field_samples: int | None = None,
                     sample_rate_khz: float | None = None) -> FrameGeometry:
    """One geometry from exactly one of model / stride / frame rate / hop (see the table above)."""
    given = [flag for flag, value in (("--model", model), ("--stride", stride_ms), ("--frame_rate", frame_rate_hz),
                                      ("--hop_samples", hop_samples)) if value is not None]
    if len(given) != 1:
        what = "none was given" if not given else f"got {', '.join(given)}"
        raise UserError(f"give the frame geometry in exactly one way: --model, --stride, --frame_rate or "
                        f"--hop_samples ({what})")
    if model is not None:
        geometry = geometry_for_model(model)
        if receptive_field_samples is not None and receptive_field_samples != geometry.receptive_field_samples:
            raise UserError(f"--receptive_field {receptive_field_samples} contradicts model {model!r} "
                            f"(R = {geometry.receptive_field_samples} samples); drop --receptive_field or use "
                            f"--hop_samples/--receptive_field without --model")
        if sample_rate_khz is not None and sample_rate_hz_from_khz(sample_rate_khz) != geometry.sample_rate_hz:
            raise UserError(f"--sample_rate {format_number(sample_rate_khz)} kHz contradicts model {model!r}, "
                            f"which takes {format_number(geometry.sample_rate_hz / 1000)} kHz audio; drop "
                            f"--sample_rate or pass {format_number(geometry.sample_rate_hz / 1000)}")
        return geometry
    if sample_rate_khz is None:
        raise UserError(f"{given[0]} needs --sample_rate (kHz, e.g. 16 or 24)")
    sr = sample_rate_hz_from_khz(sample_rate_khz)
    if stride_ms is not None:
        hop = hop_from_stride(stride_ms, sr)
    elif frame_rate_hz is not None:
        hop = hop_from_frame_rate(frame_rate_hz, sr)
    else:
        hop = int(hop_samples)
    r = receptive_field_samples if receptive_field_samples is not None else default_receptive_field(sr, hop)
    return FrameGeometry(sr, hop, int(r))


def format_number(x: float) -> str:
    """20.0 -> "20", 13.33 -> "13.33", 22.05 -> "22.05" (shortest repr, no trailing ".0")."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def stride_label(geometry: FrameGeometry) -> str:
    """The hop in ms as file names show it, at most 2 decimals: 20, 13.33 (75 Hz), 160, 100."""
    ms = 1000 * geometry.hop_samples / geometry.sample_rate_hz
    text = f"{ms:.2f}".rstrip("0").rstrip(".")
    return text


def sample_rate_label(geometry: FrameGeometry) -> str:
    """The sample rate in kHz as file names show it: 16, 24, 22.05."""
    return format_number(geometry.sample_rate_hz / 1000)


def unit_slug(unit: str) -> str:
    """A unit as file names show it: phones -> phones, "My Tier" -> My_Tier."""
    return re.sub(r"[^\w.\-]+", "_", unit).strip("_") or "unit"


def default_alignment_file(geometry: FrameGeometry, unit: str = "words", stride: str | None = None) -> str:
    """Default alignment JSON name: alignments/audio_alignments_{stride_ms}_{rate_khz}.json, with _{unit} before
    .json for units other than words. ``stride``: the stride as the user typed it (--stride 13.333), which names
    the file instead of the geometry's hop rounded to 2 decimals.

    The one naming rule: alignments_and_trans.py writes this name, the runner looks for it, and the error for a
    mismatched alignment tells the user to make it."""
    suffix = "" if unit == "words" else f"_{unit_slug(unit)}"
    stride = stride if stride is not None else stride_label(geometry)
    return f"alignments/audio_alignments_{stride}_{sample_rate_label(geometry)}{suffix}.json"
