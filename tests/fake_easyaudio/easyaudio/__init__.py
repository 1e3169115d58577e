"""A stand-in for easyaudio (https://github.com/mrpep/easyaudio), used ONLY by tests/test_audio_*.py.

It has easyaudio's documented interface (``easyaudio.hub.get_model(name, device=...)`` returning an object
with ``sr`` and ``extract_activations_from_array(x)``) and the real models' output shapes and rates, but
its "activations" are simple deterministic functions of the waveform. The real easyaudio models were not run
in this project. The tests put ``tests/fake_easyaudio`` on sys.path / PYTHONPATH themselves.
"""
__version__ = "0.0-standin"
