"""Build a tiny Audio Spectrogram Transformer folder for offline tests and demos.

The model has AST's real architecture and patch geometry (128 mel bins, 16x16 patches, frequency and time
strides of 10, so 100 ms time steps spanning 175 ms) but only 2 blocks of width 32 and a short input of
``max_length`` fbank frames (128 = 1.28 s, 12 time steps per chunk), so that ordinary utterances need several
chunks. Weights are random with a fixed seed; the position embeddings and special tokens, which AST
initialises to zero, are randomised too so that every token position is distinguishable.

    python3 tools/make_tiny_ast.py --out outputs/models      # -> outputs/models/tiny-ast

The folder (config.json, model weights, preprocessor_config.json) loads by path exactly as a hub name loads:
``python3 embeddings/audio_embeddings.py --model outputs/models/tiny-ast --path ...``.
"""
from __future__ import annotations

import os
from pathlib import Path

from wordreps.common.errors import UserError

TINY_AST_NAME = "tiny-ast"


def build_tiny_ast(out_dir: str | os.PathLike, *, max_length: int = 128, hidden_size: int = 32,
                   num_layers: int = 2, num_heads: int = 2, seed: int = 0) -> Path:
    """Write a tiny ASTModel + ASTFeatureExtractor into ``out_dir`` (created) and return it."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    if max_length < 16:
        raise UserError(f"--max_length {max_length} is shorter than one 16-frame patch; use at least 16")
    out = Path(out_dir)
    torch.manual_seed(seed)
    config = ASTConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
                       intermediate_size=2 * hidden_size, num_mel_bins=128, max_length=max_length, patch_size=16,
                       frequency_stride=10, time_stride=10, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    model = ASTModel(config).eval()
    with torch.no_grad():
        emb = model.embeddings
        for p in (emb.position_embeddings, emb.cls_token, emb.distillation_token):
            p.normal_(0.0, 0.5)
    extractor = ASTFeatureExtractor(num_mel_bins=128, max_length=max_length, sampling_rate=16000)
    try:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        extractor.save_pretrained(out)
    except OSError as err:
        raise UserError(f"cannot write the tiny AST model into {out} ({err.strerror}); choose another --out") from err
    return out
