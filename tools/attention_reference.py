#!/usr/bin/env python3
"""Independent Python reference of AnySize's attention formulations (/work/shared/METHODS.md, "Attention
formulations"), as diffusers attention processors for `StableDiffusionPipeline`.

Written from METHODS.md, not from the Swift code: every mask and bias is a full N x N tensor built from grid
coordinates (clarity over speed). Only self-attention (`attn1`) layers get these processors; cross-attention
(`attn2`) keeps diffusers' own processor.

    standard   softmax(Q K^T / sqrt(d)) V
    scaled     softmax(s_l * Q K^T / sqrt(d)),  s_l = sqrt(ln N_l / ln T_l), N_l and T_l clamped to >= 2
    local      window of ht_l x wt_l keys around each query (whole dimension where the canvas is not larger than
               trained), logits of query q times sqrt(ln K_q / ln T_l); optional edge sinks (`edge` = e)
    log-bias   logits + c * max(0, ln dist(q, k)), c from the canvas area and the call's sigma
    auto       per image: trained size -> standard; no dimension larger -> scaled; otherwise local

Geometry. Level l of the UNet has the token grid h_l = ceil(h / 2^l), w_l = ceil(w / 2^l), where h x w is the
latent size of the current pipeline call (read from the UNet input); the trained grid (ht_l, wt_l) applies the
same ceil halving to the trained latent size (trained pixels / 8). A layer's level comes from its module name:
down_blocks.i -> i, mid_block -> levels - 1 (the deepest), up_blocks.i -> levels - 1 - i.

Sigma of a model call. A forward pre-hook on the UNet counts model calls from the scheduler's begin index
(`scheduler.begin_index`, set by the img2img pipelines; 0 otherwise). Call i has index begin + i, which is what
diffusers' `step_index` is during that call: it advances once per `step()`, i.e. once per model call, and
Heun's `timesteps`/`sigmas` repeat each interior entry, so its two calls per step read consecutive indices.
For schedulers with `sigmas` (Euler, Euler ancestral, Heun, DPM-Solver++) sigma = scheduler.sigmas[index];
the hook checks that scheduler.timesteps[index] is the timestep the UNet received. For schedulers without
`sigmas` (DDIM) sigma = sqrt((1 - abar_t) / abar_t) at the timestep the UNet received.

Where METHODS.md leaves room, the choices made here (the same as the Swift implementation's documented ones):
  1. log-bias compares areas on the level-0 latent grid (h * w vs. ht * wt), so every layer of one image
     uses the same c; a canvas of exactly the trained area (any shape) gets no bias at all. Distances are
     measured in token units of the layer's own grid, dist between token centres (y, x) and (y', x').
     The token itself (dist 0) gets bias 0 (max(0, ln 0) = max(0, -inf) = 0), as do its 4 neighbours (ln 1 = 0).
  2. local: the per-dimension test "larger than trained" is made per level (h_l > ht_l), so a canvas can be
     windowed at one level and whole at another. With edge e > 0 a window dimension that exceeds the
     trained grid has max(1, ht_l - 2e) rows (likewise columns), centred as the unshrunk one:
     y0 = clamp(y - window // 2, 0, h_l - window). Sinks are the keys within e tokens of ANY canvas border,
     i.e. min(ky, h_l - 1 - ky, kx, w_l - 1 - kx) < e, including the borders of a dimension that is not
     windowed; they apply whenever some dimension is windowed. When no dimension is windowed every query
     sees all N_l keys and `local` is `scaled` (sinks add nothing).
  3. auto compares the level-0 latent grid with the trained one and uses `local` with the requested edge.

Run `python tools/attention_reference.py` for self-checks of the formulas (the METHODS.md example factors,
scaled == standard at the trained size, local == scaled on canvases no larger than trained, the log-bias
sign schedule).
"""
import math
import re

import torch
from diffusers.models.attention_processor import Attention

MODES = ("standard", "scaled", "local", "log-bias", "auto")


def grid(size, level):
    """ceil(size / 2^level), as `level` 3x3 stride-2 padding-1 convolutions shrink a side."""
    for _ in range(level):
        size = (size + 1) // 2
    return size


def level_of(module_name, levels):
    """The UNet level of an attention module from its diffusers name."""
    m = re.match(r"down_blocks\.(\d+)\.", module_name)
    if m:
        return int(m.group(1))
    if module_name.startswith("mid_block."):
        return levels - 1
    m = re.match(r"up_blocks\.(\d+)\.", module_name)
    if m:
        return levels - 1 - int(m.group(1))
    raise ValueError(f"cannot tell the UNet level of {module_name}")


def resolve_auto(latent_hw, trained_hw):
    """METHODS.md formulation 4 on level-0 latent grids."""
    (h, w), (ht, wt) = latent_hw, trained_hw
    if (h, w) == (ht, wt):
        return "standard"
    if h <= ht and w <= wt:
        return "scaled"
    return "local"


def entropy_factor(keys, trained):
    """sqrt(ln K / ln T), both clamped to >= 2 (float64, as a tensor if `keys` is one)."""
    if torch.is_tensor(keys):
        return torch.sqrt(torch.log(keys.to(torch.float64).clamp(min=2)) / math.log(max(trained, 2)))
    return math.sqrt(math.log(max(keys, 2)) / math.log(max(trained, 2)))


def positions(h, w):
    """[N, 2] (y, x) of the tokens of an h x w grid in diffusers' row-major token order."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1)


def local_mask(h, w, ht, wt, edge):
    """[N, N] bool: may query q attend to key k. METHODS.md formulation 2, full matrix."""
    pos = positions(h, w)
    qy, qx = pos[:, 0:1], pos[:, 1:2]          # [N, 1]
    ky, kx = pos[None, :, 0], pos[None, :, 1]  # [1, N]

    def axis(q, k, size, trained):
        if size <= trained:  # not larger than trained: the window spans the whole dimension
            return torch.ones(q.shape[0], k.shape[1], dtype=torch.bool), False
        window = max(1, trained - 2 * edge)
        start = (q - window // 2).clamp(0, size - window)
        return (k >= start) & (k < start + window), True

    rows, rows_windowed = axis(qy, ky, h, ht)
    cols, cols_windowed = axis(qx, kx, w, wt)
    mask = rows & cols
    if edge > 0 and (rows_windowed or cols_windowed):
        border = torch.minimum(torch.minimum(ky, h - 1 - ky), torch.minimum(kx, w - 1 - kx))  # [1, N]
        mask = mask | (border < edge)
    return mask


def log_distance(h, w):
    """[N, N] float64: max(0, ln(Euclidean distance)) between grid positions."""
    pos = positions(h, w).to(torch.float64)
    dist = torch.cdist(pos, pos)
    return torch.log(dist).clamp(min=0)  # ln 0 = -inf -> 0


def log_bias_coefficient(latent_hw, trained_hw, sigma):
    """c of METHODS.md formulation 3, areas compared on the level-0 latent grid; 0 = no bias."""
    area, trained = latent_hw[0] * latent_hw[1], trained_hw[0] * trained_hw[1]
    if area > trained:
        return 1.0 if sigma > 4 else -0.1
    if area < trained:
        return 1.0
    return 0.0


class AttentionState:
    """What all self-attention processors of one pipeline share: the formulation, the trained latent grid,
    and, per model call, the latent grid and sigma (set by the UNet pre-hook)."""

    def __init__(self, mode, trained_latent_hw, levels, edge=0):
        assert mode in MODES, mode
        self.mode = mode
        self.edge = edge
        self.trained_latent_hw = trained_latent_hw
        self.levels = levels
        self.latent_hw = None
        self.sigma = None
        self.calls = []  # (index, timestep, sigma) per model call of the current run

    def concrete(self):
        """The formulation of the current image (`auto` resolved)."""
        if self.mode == "auto":
            return resolve_auto(self.latent_hw, self.trained_latent_hw)
        return self.mode

    def grids(self, level):
        """(h_l, w_l), (ht_l, wt_l)."""
        (h, w), (ht, wt) = self.latent_hw, self.trained_latent_hw
        return (grid(h, level), grid(w, level)), (grid(ht, level), grid(wt, level))


class FormulationAttnProcessor:
    """`AttnProcessor` for one self-attention layer: softmax(adjust(Q K^T / sqrt(d))) V with the adjustment of
    the state's formulation. One instance per layer (it knows its level)."""

    def __init__(self, state, level):
        self.state = state
        self.level = level

    def adjust(self, logits):
        """logits [B*heads, N, N] = Q K^T / sqrt(d) -> adjusted logits, for the current image and call."""
        state = self.state
        (h, w), (ht, wt) = state.grids(self.level)
        assert logits.shape[-1] == h * w, f"level {self.level}: {logits.shape[-1]} tokens, grid {h}x{w}"
        mode = state.concrete()
        if mode == "standard":
            return logits
        if mode == "scaled":
            s = entropy_factor(h * w, ht * wt)
            return logits * torch.tensor(s, dtype=torch.float32)
        if mode == "local":
            mask = local_mask(h, w, ht, wt, state.edge)                       # [N, N]
            scale = entropy_factor(mask.sum(dim=1), ht * wt).to(torch.float32)  # [N], per query
            return (logits * scale[:, None]).masked_fill(~mask, float("-inf"))
        if mode == "log-bias":
            c = log_bias_coefficient(state.latent_hw, state.trained_latent_hw, state.sigma)
            if c == 0:
                return logits
            return logits + (c * log_distance(h, w)).to(torch.float32)
        raise ValueError(mode)

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        assert encoder_hidden_states is None, "formulations apply to self-attention only"
        assert attention_mask is None and attn.spatial_norm is None and attn.group_norm is None
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))  # [B*heads, N, d]
        key = attn.head_to_batch_dim(attn.to_k(hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(hidden_states))
        logits = torch.bmm(query.float(), key.float().transpose(1, 2)) * attn.scale  # [B*heads, N, N]
        probs = self.adjust(logits).softmax(dim=-1).to(value.dtype)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))  # [B, N, heads*d]
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def call_sigma(scheduler, index, timestep):
    """The noise level of model call `index` (see the module docstring)."""
    if hasattr(scheduler, "sigmas"):
        expected = scheduler.timesteps[index]
        assert float(expected) == float(timestep), f"call {index}: UNet got t={timestep}, schedule has {expected}"
        return float(scheduler.sigmas[index])
    abar = float(scheduler.alphas_cumprod[int(timestep)])
    return math.sqrt((1 - abar) / abar)


class AttentionReference:
    """Installs the formulation `mode` on `pipe` (self-attention only) and tracks each model call's latent grid
    and sigma. Call `reset()` before every pipeline run; `state.calls` then lists (index, timestep, sigma)."""

    def __init__(self, pipe, mode, trained_size_px, edge=0):
        unet = pipe.unet
        factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        levels = len(unet.config.block_out_channels)
        self.pipe = pipe
        self.state = AttentionState(mode, (trained_size_px[1] // factor, trained_size_px[0] // factor), levels, edge)
        processors = {}
        for name, processor in unet.attn_processors.items():
            if name.endswith("attn1.processor"):
                processors[name] = FormulationAttnProcessor(self.state, level_of(name, levels))
            else:
                processors[name] = processor
        unet.set_attn_processor(processors)
        self.hook = unet.register_forward_pre_hook(self._before_call, with_kwargs=True)

    def reset(self):
        self.state.calls = []
        self.state.latent_hw = None

    def remove(self):
        self.hook.remove()

    def _before_call(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        if torch.is_tensor(timestep):
            timestep = timestep.flatten()[0].item()
        scheduler = self.pipe.scheduler
        index = (getattr(scheduler, "begin_index", None) or 0) + len(self.state.calls)
        sigma = call_sigma(scheduler, index, timestep)
        hw = tuple(sample.shape[-2:])
        if self.state.latent_hw is None:
            self.state.latent_hw = hw
            if self.state.mode == "auto":
                print(f"auto -> {self.summary()}")
        assert self.state.latent_hw == hw, "one image size per run"
        self.state.sigma = sigma
        self.state.calls.append((index, timestep, sigma))

    def summary(self):
        """The concrete formulation and its per-level numbers, e.g. 'scaled (0.913, 0.894, 0.866, 0.816)'."""
        mode = self.state.concrete()
        if mode == "scaled":
            factors = []
            for level in range(self.state.levels):
                (h, w), (ht, wt) = self.state.grids(level)
                factors.append(f"{entropy_factor(h * w, ht * wt):.3f}")
            return f"scaled ({', '.join(factors)})"
        if mode == "local":
            means = []
            for level in range(self.state.levels):
                (h, w), (ht, wt) = self.state.grids(level)
                means.append(f"{local_mask(h, w, ht, wt, self.state.edge).sum().item() / (h * w):.1f}")
            return f"local (mean keys per query {', '.join(means)}; edge {self.state.edge})"
        return mode


def _self_check():
    """Checks of the formulas against METHODS.md's own numbers and identities."""
    # Example multipliers for SD1.5 (trained 64x64 latents).
    for side, expected in ((32, (0.913, 0.894, 0.866, 0.816)), (96, (1.048, 1.057, 1.071, 1.093))):
        got = tuple(round(entropy_factor(grid(side, l) ** 2, grid(64, l) ** 2), 3) for l in range(4))
        assert got == expected, (side, got, expected)
    torch.manual_seed(0)
    state = AttentionState("scaled", (8, 6), levels=4)
    state.latent_hw, state.sigma = (8, 6), 10.0
    base = FormulationAttnProcessor(AttentionState("standard", (8, 6), 4), 0)
    base.state.latent_hw = (8, 6)
    small = torch.randn(2, 48, 48)
    assert torch.equal(FormulationAttnProcessor(state, 0).adjust(small), base.adjust(small)), "scaled at trained size"
    # local on a canvas no larger than trained == scaled, with and without sinks.
    for edge in (0, 2):
        for hw in ((5, 6), (8, 3), (8, 6)):
            mask = local_mask(hw[0], hw[1], 8, 6, edge)
            assert bool(mask.all()), (edge, hw)
    # A window larger than trained in both dimensions without sinks sees exactly T keys.
    assert bool((local_mask(12, 10, 8, 6, 0).sum(1) == 48).all())
    # Sinks: the union is counted once; every query sees all border keys.
    mask = local_mask(12, 5, 8, 6, 2)   # rows windowed (8 - 2*2 = 4 rows), columns whole
    border = torch.tensor([min(y, 11 - y, x, 4 - x) < 2 for y in range(12) for x in range(5)])
    assert bool(mask[:, border].all())
    # Query (0, 0): window rows 0..<4; outside it only (4..<10, column 2) is neither window nor sink.
    assert int(mask[0].sum()) == 60 - 6
    # log-bias coefficient schedule.
    assert log_bias_coefficient((40, 48), (32, 32), 4.5) == 1.0
    assert log_bias_coefficient((40, 48), (32, 32), 4.0) == -0.1
    assert log_bias_coefficient((16, 16), (32, 32), 0.5) == 1.0
    assert log_bias_coefficient((16, 64), (32, 32), 9.0) == 0.0
    print("attention_reference self-checks passed")


if __name__ == "__main__":
    _self_check()
