"""One entry point from (kind, model name) to a Backend. Family modules are imported only when needed."""
from __future__ import annotations

from wordreps.common.errors import UserError
from wordreps.embeddings.base import Backend

KINDS = ("speech", "text", "glove", "audio")


def load_backend(kind: str, model: str, device=None, **opts) -> Backend:
    """Build the backend for ``model`` on ``device``; ``precision=`` (auto|float32|bfloat16|float16, default auto)
    is the compute precision of model backends, resolved for the device by ``common/precision.py``.

    - speech: s3prl hub name (wav2vec2, wav2vec2_large_960, hubert, wavlm_large, ...), an s3prl converted
      checkpoint (``s3prl_ckpt=`` or a file path), or a Hugging Face Wav2Vec2/HuBERT/WavLM/Data2VecAudio name
      or folder;
    - text: a Hugging Face text encoder (``text_backends.load_hf_text_backend``);
    - glove: a GloVe vectors file (``text_backends.load_glove_backend``; ``model`` is its path);
    - audio: easyaudio models or Hugging Face ASTModel (``audio_backends.load_audio_backend``).
    """
    if device is None:
        device = "cpu"
    if kind == "speech":
        from wordreps.embeddings.speech_backends import load_speech_backend
        return load_speech_backend(model, device, **opts)
    if kind == "text":
        from wordreps.embeddings.text_backends import load_hf_text_backend
        return load_hf_text_backend(model, device, **opts)
    if kind == "glove":
        from wordreps.embeddings.text_backends import load_glove_backend
        return load_glove_backend(model, **opts)
    if kind == "audio":
        from wordreps.embeddings.audio_backends import load_audio_backend
        return load_audio_backend(model, device, **opts)
    raise UserError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
