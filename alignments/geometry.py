"""Frame geometry of a model: where each output frame sits in the waveform.

A frame ``t`` of a model with hop ``H`` samples and receptive field ``R`` samples covers samples
``[t*H, t*H + R)``; its centre is at ``(t*H + R/2) / sample_rate_hz`` seconds. See
``alignments/frames.py`` for how words are mapped to frames.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrameGeometry":
        return cls(int(d["sample_rate_hz"]), int(d["hop_samples"]), int(d["receptive_field_samples"]))
