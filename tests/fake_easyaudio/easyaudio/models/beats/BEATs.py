"""Stand-in for easyaudio's ``easyaudio.models.beats.BEATs`` (``BEATs``, ``BEATsConfig``), tests only.

Like the real classes, a checkpoint is ``{"cfg": dict, "model": state_dict}`` and ``BEATs(BEATsConfig(cfg))``
builds the module whose ``load_state_dict`` takes ``model``. The stand-in module has one parameter, ``scale``,
which multiplies the stand-in wrapper's activations, so a test can tell which checkpoint was loaded.
"""
from __future__ import annotations

import torch


class BEATsConfig:
    def __init__(self, cfg: dict | None = None) -> None:
        self.encoder_layers = 3
        self.__dict__.update(cfg or {})


class BEATs(torch.nn.Module):
    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = torch.nn.Parameter(torch.ones(()))
