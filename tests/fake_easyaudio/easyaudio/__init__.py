"""A stand-in for easyaudio (https://github.com/mrpep/easyaudio), used ONLY by tests/embeddings/test_audio_*.py.

It has the real easyaudio's interface (``easyaudio.hub.available_models`` / ``get_model(name)`` giving a wrapper
with ``sr`` and ``extract_activations_from_array(x)``), including where the real code differs from easyaudio's
documentation (``hub.py`` lists how), and the real models' output shapes and rates, but its "activations" are
simple deterministic functions of the waveform. tests/embeddings/test_audio_easyaudio_real.py runs the adapter
against the real easyaudio code when that is importable. The tests put ``tests/fake_easyaudio`` on sys.path /
PYTHONPATH themselves.
"""
__version__ = "0.0-standin"
