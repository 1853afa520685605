"""Diffusers <-> original (CompVis LDM / Stability) key layout for Stable Diffusion 1.x / 2.x checkpoints.

Used by make_fixtures.py to write single-file checkpoints of the tiny fixture models. The renames follow the
original repositories' module trees (ldm.modules.diffusionmodules.openaimodel.UNetModel,
ldm.modules.diffusionmodules.model.Encoder/Decoder, transformers' CLIPTextModel under
cond_stage_model.transformer, open_clip's text tower under cond_stage_model.model) and were checked against
diffusers' own single-file converter (diffusers.loaders.single_file_utils), which make_fixtures.py runs on the
written files.

Every function maps a diffusers state dict (parameter name -> tensor) to the original one; `invert` maps back
using the same name table, so a round trip is exact by construction of names, and make_fixtures.py checks the
tensors too.
"""

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD1: transformers CLIPTextModel, keys keep "text_model."
OPEN_CLIP_PREFIX = "cond_stage_model.model."  # SD2: open_clip text tower

# ResnetBlock2D (diffusers) -> ResBlock (openaimodel). Order matters: longest names first is not needed,
# no name is a prefix of another.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

# ResnetBlock2D (diffusers VAE) -> ResnetBlock (ldm model.py): same names except the 1x1 shortcut.
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}

# Attention (diffusers VAE mid block) -> AttnBlock (ldm model.py): 1x1 convs instead of linears.
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_module(name, table):
    """`name` is "<module>.<param>" with <module> a key of `table`; returns the renamed string."""
    module, param = name.rsplit(".", 1)
    return f"{table[module]}.{param}"


def unet_key(name, config):
    """Original key (without prefix) of a diffusers UNet2DConditionModel parameter."""
    per_level = config["layers_per_block"] + 1  # input/output_blocks entries per level (resnets + sampler)
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    module, param = name.rsplit(".", 1)
    if module in fixed:
        return f"{fixed[module]}.{param}"
    parts = name.split(".")
    if parts[0] == "down_blocks":
        level = int(parts[1])
        kind, index, rest = parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "resnets":
            return f"input_blocks.{1 + level * per_level + index}.0.{_rename_module(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"input_blocks.{1 + level * per_level + index}.1.{rest}"
        if kind == "downsamplers":  # downsamplers.0.conv.* -> input_blocks.N.0.op.*
            return f"input_blocks.{(level + 1) * per_level}.0.op.{rest.split('.', 1)[1]}"
    if parts[0] == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "resnets":  # resnets.0 -> middle_block.0, resnets.1 -> middle_block.2
            return f"middle_block.{2 * index}.{_rename_module(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"middle_block.1.{rest}"
    if parts[0] == "up_blocks":
        level = int(parts[1])
        kind, index, rest = parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "resnets":
            return f"output_blocks.{level * per_level + index}.0.{_rename_module(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"output_blocks.{level * per_level + index}.1.{rest}"
        if kind == "upsamplers":
            # The upsampler follows the block's last resnet, after its attention when the block has one.
            has_attention = "CrossAttn" in config["up_block_types"][level]
            slot = 2 if has_attention else 1
            return f"output_blocks.{level * per_level + per_level - 1}.{slot}.{rest}"
    raise KeyError(f"no original name for UNet parameter {name}")


def vae_key(name, config):
    """Original key (without prefix) of a diffusers AutoencoderKL parameter, and whether the original is a
    1x1 convolution where diffusers has a linear layer."""
    levels = len(config["block_out_channels"])
    parts = name.split(".")
    coder = parts[0]  # encoder / decoder / quant_conv / post_quant_conv
    if coder in ("quant_conv", "post_quant_conv"):
        return name, False
    rest = parts[1:]
    top = {"conv_in": "conv_in", "conv_out": "conv_out", "conv_norm_out": "norm_out"}
    if rest[0] in top:
        return f"{coder}.{top[rest[0]]}.{rest[1]}", False
    if rest[0] in ("down_blocks", "up_blocks"):
        level = int(rest[1])
        # The decoder's up blocks are numbered from the lowest resolution in diffusers, the highest in LDM.
        original_level = level if rest[0] == "down_blocks" else levels - 1 - level
        group = "down" if rest[0] == "down_blocks" else "up"
        if rest[2] == "resnets":
            inner = _rename_module(".".join(rest[4:]), _VAE_RESNET)
            return f"{coder}.{group}.{original_level}.block.{rest[3]}.{inner}", False
        if rest[2] in ("downsamplers", "upsamplers"):  # *samplers.0.conv.* -> downsample/upsample.conv.*
            sampler = "downsample" if rest[2] == "downsamplers" else "upsample"
            return f"{coder}.{group}.{original_level}.{sampler}.{'.'.join(rest[4:])}", False
    if rest[0] == "mid_block":
        if rest[1] == "resnets":  # resnets.0 -> block_1, resnets.1 -> block_2
            inner = _rename_module(".".join(rest[3:]), _VAE_RESNET)
            return f"{coder}.mid.block_{int(rest[2]) + 1}.{inner}", False
        if rest[1] == "attentions":
            inner = ".".join(rest[3:])
            module, param = inner.rsplit(".", 1)
            return f"{coder}.mid.attn_1.{_VAE_ATTENTION[module]}.{param}", module != "group_norm"
    raise KeyError(f"no original name for VAE parameter {name}")


def unet_to_original(state, config):
    return {UNET_PREFIX + unet_key(k, config): v for k, v in state.items()}


def vae_to_original(state, config):
    out = {}
    for k, v in state.items():
        key, to_conv = vae_key(k, config)
        if to_conv and v.ndim == 2:  # Linear [C, C] -> Conv2d 1x1 [C, C, 1, 1]
            v = v[:, :, None, None]
        out[VAE_PREFIX + key] = v
    return out


def clip_to_original(state):
    """SD1: transformers CLIPTextModel keys under cond_stage_model.transformer, with the "text_model." level that
    transformers < 5.6 had (and every SD1 checkpoint has)."""
    out = {}
    for k, v in state.items():
        k = k if k.startswith("text_model.") else "text_model." + k
        out[CLIP_PREFIX + k] = v
    return out


def clip_to_open_clip(state, layers):
    """SD2: CLIPTextModel (gelu, causal) -> open_clip text tower names. q/k/v are packed into in_proj (rows
    q, then k, then v), as torch.nn.MultiheadAttention stores them."""
    s = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {
        "token_embedding.weight": s["embeddings.token_embedding.weight"],
        "positional_embedding": s["embeddings.position_embedding.weight"],
        "ln_final.weight": s["final_layer_norm.weight"],
        "ln_final.bias": s["final_layer_norm.bias"],
    }
    for i in range(layers):
        src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        out[dst + "ln_1.weight"] = s[src + "layer_norm1.weight"]
        out[dst + "ln_1.bias"] = s[src + "layer_norm1.bias"]
        out[dst + "ln_2.weight"] = s[src + "layer_norm2.weight"]
        out[dst + "ln_2.bias"] = s[src + "layer_norm2.bias"]
        out[dst + "attn.in_proj_weight"] = torch.cat([s[src + f"self_attn.{p}_proj.weight"] for p in "qkv"], 0)
        out[dst + "attn.in_proj_bias"] = torch.cat([s[src + f"self_attn.{p}_proj.bias"] for p in "qkv"], 0)
        out[dst + "attn.out_proj.weight"] = s[src + "self_attn.out_proj.weight"]
        out[dst + "attn.out_proj.bias"] = s[src + "self_attn.out_proj.bias"]
        out[dst + "mlp.c_fc.weight"] = s[src + "mlp.fc1.weight"]
        out[dst + "mlp.c_fc.bias"] = s[src + "mlp.fc1.bias"]
        out[dst + "mlp.c_proj.weight"] = s[src + "mlp.fc2.weight"]
        out[dst + "mlp.c_proj.bias"] = s[src + "mlp.fc2.bias"]
    return {OPEN_CLIP_PREFIX + k: v for k, v in out.items()}


def open_clip_to_clip(original, layers):
    """Inverse of clip_to_open_clip for the first `layers` resblocks (SD2 uses the penultimate layer's output,
    so the checkpoint's last resblock, text_projection and logit_scale are not part of the text encoder)."""
    s = {k.removeprefix(OPEN_CLIP_PREFIX): v for k, v in original.items() if k.startswith(OPEN_CLIP_PREFIX)}
    out = {
        "embeddings.token_embedding.weight": s["token_embedding.weight"],
        "embeddings.position_embedding.weight": s["positional_embedding"],
        "final_layer_norm.weight": s["ln_final.weight"],
        "final_layer_norm.bias": s["ln_final.bias"],
    }
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        out[dst + "layer_norm1.weight"] = s[src + "ln_1.weight"]
        out[dst + "layer_norm1.bias"] = s[src + "ln_1.bias"]
        out[dst + "layer_norm2.weight"] = s[src + "ln_2.weight"]
        out[dst + "layer_norm2.bias"] = s[src + "ln_2.bias"]
        for p, w, b in zip("qkv", s[src + "attn.in_proj_weight"].chunk(3, 0), s[src + "attn.in_proj_bias"].chunk(3, 0)):
            out[dst + f"self_attn.{p}_proj.weight"] = w
            out[dst + f"self_attn.{p}_proj.bias"] = b
        out[dst + "self_attn.out_proj.weight"] = s[src + "attn.out_proj.weight"]
        out[dst + "self_attn.out_proj.bias"] = s[src + "attn.out_proj.bias"]
        out[dst + "mlp.fc1.weight"] = s[src + "mlp.c_fc.weight"]
        out[dst + "mlp.fc1.bias"] = s[src + "mlp.c_fc.bias"]
        out[dst + "mlp.fc2.weight"] = s[src + "mlp.c_proj.weight"]
        out[dst + "mlp.fc2.bias"] = s[src + "mlp.c_proj.bias"]
    return out


def unet_from_original(original, names, config):
    """diffusers UNet state dict from an original checkpoint, for the diffusers parameter `names`."""
    return {n: original[UNET_PREFIX + unet_key(n, config)] for n in names}


def vae_from_original(original, names, config):
    out = {}
    for n in names:
        key, from_conv = vae_key(n, config)
        v = original[VAE_PREFIX + key]
        out[n] = v[:, :, 0, 0] if from_conv and v.ndim == 4 else v
    return out


def clip_from_original(original):
    return {k.removeprefix(CLIP_PREFIX + "text_model."): v for k, v in original.items()
            if k.startswith(CLIP_PREFIX + "text_model.") and not k.endswith("position_ids")}
