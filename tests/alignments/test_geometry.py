"""The geometry registry: model names, strides, exact frame rates, explicit hops."""
from __future__ import annotations

import pytest

from wordreps.alignments.geometry import (FrameGeometry, geometry_for_model, resolve_geometry, sample_rate_label,
                                          stride_label)
from wordreps.common.errors import UserError


@pytest.mark.parametrize("name", ["wav2vec2", "wav2vec2_large_960", "hubert", "hubert_large_ll60k", "wavlm_base_plus",
                                  "wavlm_large", "data2vec", "distilhubert", "facebook/wav2vec2-base-960h",
                                  "microsoft/wavlm-large", "facebook/hubert-large-ll60k"])
def test_conv_stack_models(name):
    # kernels (10,3,3,3,3,2,2), strides (5,2,2,2,2,2,2): hop 5*2^6 = 320, field 10 + 2*5 + 2*10 + 2*20 + 2*40
    # + 1*80 + 1*160 = 400 samples.
    assert geometry_for_model(name) == FrameGeometry(16000, 320, 400)


def test_other_model_families():
    assert geometry_for_model("encodecmae_base") == FrameGeometry(24000, 320, 320)
    assert geometry_for_model("encodecmae_large") == FrameGeometry(24000, 320, 320)
    # BEATs: 16 fbank shifts of 10 ms = 160 ms = 2560 samples; a patch spans 15 * 160 + 400 = 2800 samples.
    assert geometry_for_model("BEATs_iter3") == FrameGeometry(16000, 2560, 2800)
    assert geometry_for_model("BEATs_iter3_plus_AS2M") == FrameGeometry(16000, 2560, 2800)
    # AST: time stride of 10 fbank frames = 100 ms = 1600 samples.
    assert geometry_for_model("ast") == FrameGeometry(16000, 1600, 2800)


def test_unknown_model_is_refused_with_the_way_out():
    with pytest.raises(UserError, match="--stride"):
        geometry_for_model("bert-base-uncased")


def test_stride_and_sample_rate():
    assert resolve_geometry(stride_ms=20, sample_rate_khz=16) == FrameGeometry(16000, 320, 400)
    # 13.33 ms * 24 = 319.92 samples, 0.025 % from 320: accepted as 320 (R defaults to the hop off 16 kHz/320).
    assert resolve_geometry(stride_ms=13.33, sample_rate_khz=24) == FrameGeometry(24000, 320, 320)
    # 10 ms at 24 kHz = 240 samples, R = hop.
    assert resolve_geometry(stride_ms=10, sample_rate_khz=24) == FrameGeometry(24000, 240, 240)
    assert resolve_geometry(stride_ms=20, sample_rate_khz=16, receptive_field_samples=320) == \
        FrameGeometry(16000, 320, 320)


def test_stride_that_is_not_a_whole_hop_is_refused():
    # 0.7 ms * 16 = 11.2 samples, 1.8 % from 11.
    with pytest.raises(UserError, match="--frame_rate"):
        resolve_geometry(stride_ms=0.7, sample_rate_khz=16)
    # 13.2 ms * 24 = 316.8 samples, 0.063 % from 317: accepted as 317.
    assert resolve_geometry(stride_ms=13.2, sample_rate_khz=24).hop_samples == 317
    # 13 ms * 22.05 = 286.65 samples, 0.12 % from 287: accepted; 1.3 ms * 22.05 = 28.665, 1.2 % from 29: refused.
    assert resolve_geometry(stride_ms=13, sample_rate_khz=22.05).hop_samples == 287
    with pytest.raises(UserError, match="--hop_samples"):
        resolve_geometry(stride_ms=1.3, sample_rate_khz=22.05)


def test_exact_frame_rate():
    assert resolve_geometry(frame_rate_hz=75, sample_rate_khz=24) == FrameGeometry(24000, 320, 320)
    assert resolve_geometry(frame_rate_hz=50, sample_rate_khz=16) == FrameGeometry(16000, 320, 400)
    with pytest.raises(UserError, match="not a whole number"):
        resolve_geometry(frame_rate_hz=70, sample_rate_khz=24)  # 342.857... samples


def test_explicit_hop_and_conflicts():
    assert resolve_geometry(hop_samples=320, receptive_field_samples=640, sample_rate_khz=24) == \
        FrameGeometry(24000, 320, 640)
    with pytest.raises(UserError, match="exactly one way"):
        resolve_geometry(stride_ms=20, frame_rate_hz=50, sample_rate_khz=16)
    with pytest.raises(UserError, match="exactly one way"):
        resolve_geometry(sample_rate_khz=16)
    with pytest.raises(UserError, match="--sample_rate"):
        resolve_geometry(stride_ms=20)
    with pytest.raises(UserError, match="contradicts"):
        resolve_geometry(model="encodecmae_base", sample_rate_khz=16)


def test_labels_for_file_names():
    assert [stride_label(geometry_for_model(m)) for m in ("wavlm_large", "encodecmae_base", "BEATs_iter3", "ast")] \
        == ["20", "13.33", "160", "100"]
    assert sample_rate_label(FrameGeometry(24000, 320, 320)) == "24"
    assert sample_rate_label(FrameGeometry(22050, 512, 512)) == "22.05"
