"""Offline speech synthesis with libespeak-ng (from the ``espeakng-loader`` wheel) through ctypes.

Only what the demo corpus needs: one word at a time, 16-bit samples at the library's rate (22050 Hz),
and espeak's own phoneme names for that word. The library keeps global state, so there is one
:class:`Espeak` per process.

Determinism: espeak-ng's output depends on its internal state (intonation and a pseudo-random
"flutter"), so two calls with the same word can differ by a few samples. The same sequence of calls in a
fresh process gives the same samples; callers must keep their call order fixed.
"""
from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np

from wordreps.common.errors import UserError

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
_PHONEME_SEPARATOR_SPACE = ord(" ") << 8  # bits 8-23 of phonememode: separator between phoneme names

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_INSTANCE: Optional["Espeak"] = None


class Espeak:
    """A synchronous libespeak-ng session. Use :func:`get_espeak` rather than constructing it."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:
            raise UserError("the package espeakng-loader is not installed; run "
                            "`.venv/bin/pip install -r requirements.txt` and try again") from err
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as err:
            raise UserError(f"libespeak-ng from espeakng-loader cannot be loaded ({err}); "
                            "reinstall espeakng-loader") from err
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]

        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise UserError(f"libespeak-ng failed to initialise with data at {data_path}; reinstall espeakng-loader")
        self.sample_rate_hz: int = rate
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _CALLBACK(self._on_samples)
        lib.espeak_SetSynthCallback(self._callback)
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed(0)

    def _on_samples(self, wav, num_samples: int, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = go on synthesising

    def set_voice(self, name: str, rate_wpm: int | None = None, pitch: int | None = None,
                  pitch_range: int | None = None) -> None:
        """Select a voice such as ``"en-us"`` or ``"en+f3"`` (language + variant); pitch and range are 0-100."""
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise UserError(f"espeak-ng has no voice named {name!r}; pick one from espeak-ng-data/voices")
        for param, value in ((_ESPEAK_RATE, rate_wpm), (_ESPEAK_PITCH, pitch), (_ESPEAK_RANGE, pitch_range)):
            if value is not None:
                self._lib.espeak_SetParameter(param, int(value), 0)

    def set_pitch(self, pitch: int) -> None:
        self._lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)

    def set_rate(self, rate_wpm: int) -> None:
        self._lib.espeak_SetParameter(_ESPEAK_RATE, int(rate_wpm), 0)

    def synth(self, text: str) -> np.ndarray:
        """Synthesize ``text`` with the current voice: int16 samples at :attr:`sample_rate_hz`."""
        data = text.encode("utf-8")
        self._chunks = []
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if err != 0 or not self._chunks:
            raise UserError(f"espeak-ng could not synthesize {text!r} (error {err})")
        return np.concatenate(self._chunks).astype(np.int16)

    def phonemes(self, word: str) -> list[str]:
        """espeak's ASCII phoneme names for ``word`` in the current voice's language, stress marks removed."""
        ptr = ctypes.c_char_p(word.encode("utf-8"))
        out = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _ESPEAK_CHARS_UTF8, _PHONEME_SEPARATOR_SPACE)
        names = (out or b"").decode("utf-8", "replace").replace("'", " ").replace(",", " ").split()
        return names or list(word.upper())


def get_espeak() -> Espeak:
    """The process's one espeak-ng session (the library cannot be initialised twice)."""
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = Espeak()
    return _INSTANCE
