"""The export-friendly vision tower reproduces the stock one and exports to ONNX."""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

from fastdrive_ros.nn.vision import VisionEncoder
from fastdrive_ros.nn.vision_export import ExportableVisionEncoder, window_layout

torch.set_num_threads(2)


def make_encoder(**overrides) -> VisionEncoder:
    values = dict(
        depth=4,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        out_hidden_size=96,
        fullatt_block_indexes=[1, 3],
    )
    values.update(overrides)
    torch.manual_seed(0)
    return VisionEncoder(config=Qwen2_5_VLVisionConfig(**values)).eval()


@pytest.fixture(scope="module")
def encoder() -> VisionEncoder:
    return make_encoder()


# 112x196: 4x7 merged tokens (whole windows in height); 140x252: 5x9 (no whole windows);
# 56x56: a single partial window; 224x224: exactly 2x2 windows.
SIZES = [(112, 196), (140, 252), (56, 56), (224, 224)]


@pytest.mark.parametrize("size", SIZES)
def test_exportable_matches_stock_tower(encoder: VisionEncoder, size: tuple[int, int]) -> None:
    pixels = torch.randn(2, 3, *size)
    twin = encoder.exportable(size)
    with torch.no_grad():
        stock = encoder(pixels, return_attention=True)
        tokens, received = twin.forward_with_attention(pixels)
        plain = twin(pixels)
    n = stock.tokens_per_camera[0]
    assert tokens.shape == (2, n, 96) and received.shape == (2, n)
    assert twin.tokens_per_camera() == n
    diff = (tokens.reshape(-1, 96) - stock.tokens).abs().max().item()
    assert diff < 1e-5, f"max |diff| {diff}"
    torch.testing.assert_close(plain, tokens, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(
        received.reshape(-1), stock.aux["attention_received"], atol=1e-7, rtol=1e-5
    )


def test_exportable_without_full_attention_blocks() -> None:
    encoder = make_encoder(depth=2, fullatt_block_indexes=[])
    pixels = torch.randn(2, 3, 140, 252)
    with torch.no_grad():
        stock = encoder(pixels, return_attention=True)
        tokens, received = encoder.exportable().forward_with_attention(pixels)
    torch.testing.assert_close(tokens.reshape(-1, 96), stock.tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        received.reshape(-1), stock.aux["attention_received"], atol=1e-7, rtol=1e-5
    )


def test_exportable_shares_weights(encoder: VisionEncoder) -> None:
    twin = encoder.exportable((56, 56))
    assert isinstance(twin, ExportableVisionEncoder)
    assert twin.encoder is encoder
    own = {id(p) for p in twin.parameters()}
    assert own == {id(p) for p in encoder.parameters()}


def test_fixed_size_is_enforced(encoder: VisionEncoder) -> None:
    twin = encoder.exportable((56, 84))
    with pytest.raises(ValueError, match="fixed to 56x84"):
        twin(torch.randn(1, 3, 56, 56))
    with pytest.raises(ValueError, match="multiple of 28"):
        encoder.exportable((50, 84))


def test_window_layout_covers_every_patch_once() -> None:
    layout = window_layout(image_size=(140, 252), patch_size=14, merge_size=2, window_size=112)
    seq = 5 * 9 * 4
    assert layout.windows == 2 * 3 and layout.slots == 64
    real = layout.window_index.view(layout.windows, layout.slots)[layout.window_valid]
    assert sorted(real.tolist()) == list(range(seq))
    assert int(layout.window_count.sum()) == seq
    assert torch.equal(layout.window_index[layout.inverse_index], torch.arange(seq))


def test_onnx_export_runs_in_onnxruntime(tmp_path) -> None:
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    encoder = make_encoder(depth=2, hidden_size=32, out_hidden_size=48, fullatt_block_indexes=[1])

    class WithAttention(torch.nn.Module):
        def __init__(self, twin: ExportableVisionEncoder) -> None:
            super().__init__()
            self.twin = twin

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.twin.forward_with_attention(pixels)

    twin = encoder.exportable((112, 196))
    path = tmp_path / "vision.onnx"
    torch.onnx.export(
        WithAttention(twin).eval(),
        (torch.randn(2, 3, 112, 196),),
        str(path),
        dynamo=True,
        opset_version=20,
        input_names=["pixels"],
        output_names=["tokens", "attention_received"],
    )
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 20
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = torch.randn(2, 3, 112, 196)
    tokens, received = session.run(None, {"pixels": pixels.numpy()})
    with torch.no_grad():
        ref_tokens, ref_received = twin.forward_with_attention(pixels)
    assert tokens.shape == (2, 28, 48)
    torch.testing.assert_close(torch.from_numpy(tokens), ref_tokens, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(received), ref_received, atol=1e-6, rtol=1e-4)
