#!/usr/bin/env python3
"""Independent Python reference of AnySize's in-UNet composition methods (/work/shared/METHODS.md, "Composition
methods", items 1 and 3) on a diffusers `UNet2DConditionModel`.

Written from METHODS.md (and the two projects it names), not from the Swift code.

    redilate     ScaleCrafter (arXiv 2310.07702, YingqingHe/ScaleCrafter `ReDilateConvProcessor`): while the call's
                 timestep t >= tau (default 400), conv1 and conv2 of every resnet in down blocks 1-3, the mid
                 block and up blocks 0-2 (never level 0) run with dilation d = min(h / h_t, w / w_t) (latent
                 sizes of this call vs trained), no re-dilation where d <= 1. Fractional d: k = ceil(d), the
                 conv input is resized to round(H * k / d) x round(W * k / d) (bilinear, align_corners False;
                 Python's round), convolved with dilation k and padding k, and the output resized back to H x W
                 (bilinear). Integer d: the resizes are the identity (ScaleCrafter runs them anyway: a copy).
    deep-shrink  Kohya Deep Shrink as ComfyUI's `PatchModelAddDownscale` with its defaults (block_number 3,
                 downscale_after_skip True, bicubic both ways): while t >= (1 - end) * 1000 (end 0.35), after
                 down block 0 has stored its downsampler output as a skip (ComfyUI input block 3), the hidden
                 state is resized to round(h * (1 / f)) x round(w * (1 / f)) with f = max(h / h_t, w / w_t, 1)
                 (F.interpolate bicubic, align_corners False); on the way up, before each skip concatenation
                 whose skip has another spatial size, the hidden state is resized to the skip's size (bicubic;
                 ComfyUI's output block patch, which tests the height only; a width-only mismatch cannot happen
                 with one f for both axes, and would fail ComfyUI's concatenation).

How it runs on diffusers. `unet_forward` is diffusers' UNet2DConditionModel forward for SD 1.x/2.x written out
block by block (time embedding, conv_in, down blocks' resnets / attentions / downsamplers with their skips, the
mid block, up blocks popping skips, conv_norm_out / act / conv_out), so the Deep Shrink resizes can sit between
a skip's storage and the next block and between a skip's pop and its concatenation, which diffusers' block
modules do internally. Its output equals `unet(...)` to float rounding (`python tools/composition_reference.py`
checks it). Re-dilation patches the forward of the listed resnets' conv1 / conv2 for the duration of one call,
as ScaleCrafter does. `CompositionReference` installs both on a pipeline's UNet (forward replaced), choosing the
composition of each model call from the timestep the UNet receives.

Run `python tools/composition_reference.py` for self-checks (the block-by-block forward against diffusers, the
dilated convolution against an explicit dilated tap sum, the gates).
"""
import contextlib
import math

import torch
import torch.nn.functional as F

METHODS = ("none", "redilate", "deep-shrink")


def redilation_factor(latent_hw, trained_hw, timestep, until=400.0):
    """`redilate`'s d for one model call; 1 = off."""
    if timestep < until:
        return 1.0
    d = min(latent_hw[0] / trained_hw[0], latent_hw[1] / trained_hw[1])
    return d if d > 1 else 1.0


def deep_shrink_factor(latent_hw, trained_hw, timestep, end=0.35):
    """`deep-shrink`'s f for one model call; 1 = off."""
    if timestep < (1 - end) * 1000:
        return 1.0
    return max(latent_hw[0] / trained_hw[0], latent_hw[1] / trained_hw[1], 1.0)


def redilated_conv(conv, x, d):
    """ScaleCrafter's re-dilated call of a 3x3 padding-1 `nn.Conv2d` with factor d > 1."""
    k = math.ceil(d)
    factor = float(k / d)
    size = x.shape[-2:]
    if factor != 1:
        x = F.interpolate(x, size=(round(size[0] * factor), round(size[1] * factor)), mode="bilinear",
                          align_corners=False)
    y = F.conv2d(x, conv.weight, conv.bias, stride=1, padding=k, dilation=k)
    if factor != 1:
        y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
    return y


def redilated_resnets(unet):
    """The resnets whose convs `redilate` changes: every level but 0."""
    levels = len(unet.down_blocks)
    blocks = list(unet.down_blocks[1:]) + [unet.mid_block] + list(unet.up_blocks[:levels - 1])
    return [resnet for block in blocks for resnet in block.resnets]


@contextlib.contextmanager
def redilation(unet, d):
    """Patches conv1 / conv2 of the listed resnets to the re-dilated call with factor d (nothing when d <= 1)."""
    patched = []
    if d > 1:
        for resnet in redilated_resnets(unet):
            for conv in (resnet.conv1, resnet.conv2):
                assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
                conv.forward = (lambda c: (lambda x: redilated_conv(c, x, d)))(conv)
                patched.append(conv)
    try:
        yield
    finally:
        for conv in patched:
            del conv.forward  # back to the class's forward


def bicubic(x, size):
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False)


def unet_forward(unet, sample, timestep, encoder_hidden_states, dilation=1.0, shrink=1.0):
    """diffusers' UNet2DConditionModel forward (SD 1.x/2.x blocks), block by block, with re-dilation factor
    `dilation` and Deep Shrink factor `shrink` (1 = off). Returns the model output [B, out, h, w]."""
    timesteps = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], dtype=torch.float32)
    timesteps = timesteps.reshape(-1).expand(sample.shape[0])
    emb = unet.time_embedding(unet.time_proj(timesteps).to(sample.dtype))
    ctx = encoder_hidden_states
    with redilation(unet, dilation):
        h = unet.conv_in(sample)
        skips = [h]
        for i, block in enumerate(unet.down_blocks):
            attentions = getattr(block, "attentions", None)
            for j, resnet in enumerate(block.resnets):
                h = resnet(h, emb)
                if attentions is not None:
                    h = attentions[j](h, encoder_hidden_states=ctx, return_dict=False)[0]
                skips.append(h)
            for downsampler in block.downsamplers or []:
                h = downsampler(h)
                skips.append(h)
            if i == 0 and shrink > 1:
                # ComfyUI: common_upscale(h, round(w * (1.0 / f)), round(h * (1.0 / f)), "bicubic", "disabled")
                h = bicubic(h, (round(h.shape[-2] * (1.0 / shrink)), round(h.shape[-1] * (1.0 / shrink))))
        h = unet.mid_block(h, emb, encoder_hidden_states=ctx)
        for block in unet.up_blocks:
            attentions = getattr(block, "attentions", None)
            for j, resnet in enumerate(block.resnets):
                skip = skips.pop()
                if h.shape[-2:] != skip.shape[-2:]:
                    h = bicubic(h, skip.shape[-2:])
                h = torch.cat([h, skip], dim=1)
                h = resnet(h, emb)
                if attentions is not None:
                    h = attentions[j](h, encoder_hidden_states=ctx, return_dict=False)[0]
            for upsampler in block.upsamplers or []:
                h = upsampler(h, output_size=skips[-1].shape[-2:])
        h = unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))
    return h


class CompositionReference:
    """Installs a composition method on `pipe.unet`: every model call picks its factor from the call's latent
    size, the trained latent size and the timestep it receives, and runs `unet_forward`. `calls` records
    (timestep, dilation, shrink) per model call. `remove()` restores the UNet."""

    def __init__(self, pipe, method, trained_latent_hw, until=400.0, end=0.35):
        assert method in METHODS, method
        self.unet = pipe.unet
        self.method, self.trained, self.until, self.end = method, trained_latent_hw, until, end
        self.calls = []
        unet = self.unet

        def forward(sample, timestep, encoder_hidden_states, *args, return_dict=True, **kwargs):
            t = float(timestep.reshape(-1)[0]) if torch.is_tensor(timestep) else float(timestep)
            d, f = self.factors(tuple(sample.shape[-2:]), t)
            self.calls.append((t, d, f))
            out = unet_forward(unet, sample, timestep, encoder_hidden_states, dilation=d, shrink=f)
            return (out,) if not return_dict else type("Output", (), {"sample": out})()

        unet.forward = forward

    def factors(self, latent_hw, timestep):
        if self.method == "redilate":
            return redilation_factor(latent_hw, self.trained, timestep, self.until), 1.0
        if self.method == "deep-shrink":
            return 1.0, deep_shrink_factor(latent_hw, self.trained, timestep, self.end)
        return 1.0, 1.0

    def remove(self):
        del self.unet.forward


def _self_check():
    torch.manual_seed(0)
    # The dilated call against an explicit sum over dilated taps (integer d) and ScaleCrafter's fractional path.
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 11, 9)
    for d in (2, 3):
        padded = F.pad(x, (d, d, d, d))
        taps = sum(torch.einsum("bihw,oi->bohw", padded[:, :, ky * d: ky * d + 11, kx * d: kx * d + 9],
                                conv.weight[:, :, ky, kx]) for ky in range(3) for kx in range(3))
        expected = taps + conv.bias[None, :, None, None]
        assert torch.allclose(redilated_conv(conv, x, d), expected, atol=1e-5), d
    assert redilated_conv(conv, x, 1.5).shape == (2, 5, 11, 9)
    # Gates.
    assert redilation_factor((64, 64), (32, 32), 999) == 2 and redilation_factor((64, 64), (32, 32), 399) == 1
    assert redilation_factor((48, 80), (32, 32), 400) == 1.5 and redilation_factor((24, 64), (32, 32), 999) == 1
    assert deep_shrink_factor((48, 80), (32, 32), 650) == 2.5 and deep_shrink_factor((64, 64), (32, 32), 649) == 1
    assert deep_shrink_factor((16, 16), (32, 32), 999) == 1
    # The block-by-block forward is diffusers' forward.
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel(sample_size=16, block_out_channels=(8, 8, 8, 16), layers_per_block=2,
                                norm_num_groups=4, cross_attention_dim=4, attention_head_dim=2,
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).eval()
    with torch.no_grad():
        for hw in ((16, 16), (20, 12)):
            sample, ctx = torch.randn(2, 4, *hw), torch.randn(2, 5, 4)
            expected = unet(sample, 500.0, encoder_hidden_states=ctx).sample
            got = unet_forward(unet, sample, 500.0, ctx)
            assert torch.allclose(got, expected, atol=1e-5), (hw, (got - expected).abs().max())
            for d, f in ((2.0, 1.0), (1.5, 1.0), (1.0, 2.0), (1.0, 1.5)):
                out = unet_forward(unet, sample, 500.0, ctx, dilation=d, shrink=f)
                assert out.shape == expected.shape and (out - expected).abs().max() > 1e-4, (hw, d, f)
    print("composition_reference self-checks passed")


if __name__ == "__main__":
    _self_check()
