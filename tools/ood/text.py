"""The OOD toy model's text side: a small CLIP BPE tokenizer and a tiny frozen, seeded, untrained CLIP text encoder.

The tokenizer is CLIP's BPE table cut to the merges the prompts need (every prompt word of data.py is one token),
so the diffusers folder stays small. The single-file checkpoint has to carry the full 49408-token table (AnySize
tokenizes single files with the bundled CLIP vocabulary); `full_vocabulary_state` builds it from the small encoder:
the first 512 + MERGES rows are the same token strings in both tables (clip_bpe keeps CLIP's order), the two
special tokens move to 49406/49407, and the rows no prompt uses are seeded noise of the same scale. Both forms
therefore encode every prompt to the same hidden states.

Text encoder: transformers CLIPTextModel, hidden 16 (= the UNet's cross-attention width), 2 layers, MLP 64,
1 head (AnySize infers hidden / 64 heads, at least 1, for single files), quick_gelu, 77 positions, weights from
transformers' initialisation under torch.manual_seed(SEED). It is never trained: the UNet learns to read it.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import make_fixtures as mf  # noqa: E402  (clip_bpe, write_tokenizer: the fixtures' tokenizer writer)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

HIDDEN = 16
LAYERS = 2
SEED = 7
FULL_VOCAB = 49408
PAD = "<|endoftext|>"


def merges_needed():
    """Smallest merge count with every prompt word a single token."""
    vocab, _ = mf.clip_bpe(FULL_VOCAB - 512 - 2)
    index = {token: i for i, token in enumerate(vocab)}
    words = {w for p in data.all_prompts() for w in p.split()}
    return max(index[w + "</w>"] for w in words) - 512 + 1


def write_tokenizer(folder):
    vocab, merges = mf.clip_bpe(merges_needed())
    mf.write_tokenizer(Path(folder), vocab, merges, PAD)
    return len(vocab)


def make_text_encoder(vocab_size):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=4 * HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=1, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=HIDDEN,
        pad_token_id=vocab_size - 1, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1)
    torch.manual_seed(SEED)
    return CLIPTextModel(config).eval()


def build(folder):
    """Writes folder/tokenizer and folder/text_encoder; returns (tokenizer, text encoder)."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    vocab_size = write_tokenizer(folder / "tokenizer")
    encoder = make_text_encoder(vocab_size)
    encoder.save_pretrained(folder / "text_encoder")
    return CLIPTokenizer.from_pretrained(folder / "tokenizer"), encoder


@torch.no_grad()
def encode(tokenizer, encoder, prompts):
    ids = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return encoder(ids).last_hidden_state


def full_vocabulary_state(encoder):
    """The text encoder's state dict with the token table widened to CLIP's 49408 rows (see the module doc)."""
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    key = next(k for k in state if k.endswith("embeddings.token_embedding.weight"))
    small = state[key]
    regular = small.shape[0] - 2
    g = torch.Generator().manual_seed(SEED + 1)
    full = torch.randn(FULL_VOCAB, small.shape[1], generator=g) * small[:regular].std()
    full[:regular] = small[:regular]
    full[FULL_VOCAB - 2:] = small[regular:]
    state[key] = full
    return state
