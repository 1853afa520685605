#!/usr/bin/env python3
"""A Python reference of the AUTOMATIC1111 web UI's prompt handling, and the fixtures that
Tests/AnySizeTests/PromptWeightingTests.swift compares AnySize against.

Written from the web UI's documented behaviour (modules/prompt_parser.py `parse_prompt_attention`,
modules/sd_hijack_clip.py `tokenize_line` / `process_tokens`, "Original" emphasis), not copied:
  - "(text)" multiplies the weight of text by 1.1, "[text]" divides it by 1.1, "(text:1.3)" multiplies by 1.3;
    nesting multiplies; an unclosed "(" or "[" applies its factor to everything after it; a stray ")" or "]"
    is literal text; "\\(", "\\)", "\\[", "\\]", "\\\\" are literal characters; a lone "\\" is dropped.
  - "BREAK" (a whole word, upper case) ends the current 75-token chunk.
  - Each text run is tokenized on its own (no start/end tokens). Tokens are dealt into chunks of 75: when a chunk
    is full and the next token is not a comma, and the chunk's last comma is among its last 20 tokens, the
    tokens after that comma move to the next chunk. Each chunk is padded to 75 with end tokens and framed by
    start and end tokens (77 ids); SD 2.x tokenizers (pad id != end id) then replace every id after the first
    end token with the pad id. Weights follow their tokens; start, end and padding have weight 1.
  - Each chunk is encoded on its own; its hidden states z [77, D] are multiplied token-wise by the weights and
    rescaled so the mean over the chunk is unchanged: z' = (z * w) * (mean(z) / mean(z * w)). Chunks are
    concatenated along the token axis; a negative prompt is padded with chunks of the empty prompt to the
    prompt's chunk count (A1111's `pad_cond_uncond`).
A1111 takes the mean over the whole batch of prompts at one chunk index; AnySize (and this reference) take it per
prompt, which is the same for a batch of one prompt or of identical prompts.

Writes Tests/AnySizeTests/Fixtures/prompts/:
  parse.json       prompts -> parsed (text, weight) runs and, with the full CLIP vocabulary (SD 1.x and SD 2.x
                   padding), the 77-id chunks and their weights
  embeddings.safetensors + embeddings.json   weighted embeddings of a few prompts through the tiny-sd1 and
                   tiny-sd2 fixture text encoders (clip skip 1 and 2)

Run with the project venv: /work/venv/bin/python tools/fixtures_prompts.py
"""
import json
import os
import re
import tempfile

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

from fixtures_tokenizer import EOS, clip_vocab, write_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "AnySizeTests", "Fixtures")
OUT = os.path.join(FIXTURES, "prompts")
CHUNK = 75
BACKTRACK = 20

# One alternative per syntactic element, tried in this order at each position.
TOKEN = re.compile(r"""
\\\( | \\\) | \\\[ | \\\] | \\\\ | \\ |      # escapes, then a lone backslash
\( | \[ |                                      # openers
:\s*([+-]?[.\d]+)\s*\) |                       # ":1.3)" closes a round bracket with an explicit weight
\) | \] |                                      # closers
[^\\()\[\]:]+ |                                # plain text
:                                              # a colon that is not a weight
""", re.X)
BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse(text):
    """[(text, weight)] runs; ("BREAK", -1) marks a chunk break. Adjacent runs of equal weight are merged."""
    runs, rounds, squares = [], [], []

    def scale(start, factor):
        for run in runs[start:]:
            run[1] *= factor

    for m in TOKEN.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            runs.append([piece[1:], 1.0])
        elif piece == "(":
            rounds.append(len(runs))
        elif piece == "[":
            squares.append(len(runs))
        elif weight is not None and rounds:
            scale(rounds.pop(), float(weight))
        elif piece == ")" and rounds:
            scale(rounds.pop(), 1.1)
        elif piece == "]" and squares:
            scale(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(BREAK.split(piece)):
                if i > 0:
                    runs.append(["BREAK", -1])
                runs.append([part, 1.0])
    for start in rounds:
        scale(start, 1.1)
    for start in squares:
        scale(start, 1 / 1.1)
    if not runs:
        runs = [["", 1.0]]
    i = 0
    while i + 1 < len(runs):
        if runs[i][1] == runs[i + 1][1]:
            runs[i][0] += runs[i + 1][0]
            runs.pop(i + 1)
        else:
            i += 1
    return runs


def chunks(tokenizer, runs, min_chunks=1):
    """[(ids[77], weights[77])] for parsed runs."""
    start, end, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    done, ids, weights = [], [], []
    last_comma = -1

    def close():
        nonlocal ids, weights, last_comma
        fill = CHUNK - len(ids)
        ids, weights = [start] + ids + [end] * fill + [end], [1.0] + weights + [1.0] * fill + [1.0]
        done.append((ids, weights))
        ids, weights, last_comma = [], [], -1

    for text, weight in runs:
        if text == "BREAK" and weight == -1:
            close()
            continue
        for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
            if token == comma:
                last_comma = len(ids)
            elif len(ids) == CHUNK and last_comma != -1 and len(ids) - last_comma <= BACKTRACK:
                cut = last_comma + 1
                moved_ids, moved_weights = ids[cut:], weights[cut:]
                ids, weights = ids[:cut], weights[:cut]
                close()
                ids, weights = moved_ids, moved_weights
            if len(ids) == CHUNK:
                close()
            ids.append(token)
            weights.append(weight)
    if ids or not done:
        close()
    while len(done) < min_chunks:
        ids, weights = [], []
        close()
    if pad != end:
        done = [(c[:c.index(end) + 1] + [pad] * (76 - c.index(end)), w) for c, w in done]
    return done


def embed(encoder, tokenizer, text, clip_skip, min_chunks=1):
    """Weighted hidden states [1, 77k, D] (float64 math on float64 weights)."""
    parts = []
    for ids, weights in chunks(tokenizer, parse(text), min_chunks):
        out = encoder(torch.tensor([ids]), output_hidden_states=True)
        z = out.hidden_states[-clip_skip] if clip_skip > 1 else out.last_hidden_state
        if clip_skip > 1:
            z = encoder.final_layer_norm(z)
        z = z[0]
        w = torch.tensor(weights, dtype=z.dtype)[:, None]
        original = z.mean()
        weighted = z * w
        parts.append(weighted * (original / weighted.mean()))
    return torch.cat(parts, dim=0)[None]


PROMPTS = [
    "a photo of a cat", "(cat)", "((cat))", "(((cat)))", "[cat]", "[[cat]]", "(cat:1.3)", "(cat: 0.5 )",
    "(cat:-1)", "(cat:+2.)", "a (red:1.2) car and a [blue] bike", "(a (b:2) c)", "[a (b) c]", "((a) [b])",
    "\\(not weighted\\) \\[nor this\\]", "back\\\\slash", "lone \\ backslash", "a \\(b:1.5\\)",
    "((unclosed", "[[unclosed", "(a [b", "stray) close] here", "(a:b)", "(a:1.2:3)", "a:b c", "(:1.5)", "()", "[]",
    "(masterpiece:1.2), (best quality:1.1), 1girl, [lowres]", "((extremely detailed)), (((beautiful))), [[[ugly]]]",
    "[a:b:0.5]", "[cat|dog]", "a BREAK b", "aBREAKb", "a BREAK BREAK b", "BREAK a", "a BREAK", "(a BREAK b:1.5)",
    "break lower case", "", " ", "(((", ")))", "a, b, c, (d, e:1.4), f",
    ", ".join(f"token{i}" for i in range(40)),
    ", ".join(f"(word{i}:1.{i % 9 + 1})" for i in range(45)),
    " ".join(["long"] * 80) + ", tail, " + " ".join(["more"] * 80),
    "cat " * 74 + ", dog dog",
    "cat " * 76 + ", dog",
    ", ".join(["a b c d e f g h i j k l m n o p q r s t"] * 5) + " BREAK (second chunk:1.3)",
]

EMBED_PROMPTS = ["a photo of a cat", "a (red:1.5) fox, [blurry]", "((bird)) BREAK [sky]",
                 ", ".join(["fox"] * 50) + ", (cat:1.3)"]


def full_tokenizer(pad, folder):
    vocab, merges = clip_vocab(49152 - 256 - 2)
    write_folder(folder, vocab, merges, pad)
    return CLIPTokenizer.from_pretrained(folder)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sd1 = full_tokenizer(EOS, os.path.join(tmp, "sd1"))
        sd2 = full_tokenizer("!", os.path.join(tmp, "sd2"))
        cases = []
        for p in PROMPTS:
            runs = parse(p)
            cases.append(dict(prompt=p, runs=runs,
                              sd1=[dict(ids=i, weights=w) for i, w in chunks(sd1, runs)],
                              sd2=[dict(ids=i, weights=w) for i, w in chunks(sd2, runs)]))
    with open(os.path.join(OUT, "parse.json"), "w") as f:
        json.dump(dict(generator="tools/fixtures_prompts.py", chunk=CHUNK, comma_backtrack=BACKTRACK, cases=cases),
                  f, indent=1, ensure_ascii=False)

    tensors, records = {}, []
    negatives = {"tiny-sd1": "blurry, low quality", "tiny-sd2": ""}
    for model in ("tiny-sd1", "tiny-sd2"):
        folder = os.path.join(FIXTURES, model)
        tokenizer = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
        encoder = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder")).double().eval()
        for clip_skip in (1, 2):
            for i, p in enumerate(EMBED_PROMPTS):
                key = f"{model}/skip{clip_skip}/{i}"
                with torch.no_grad():
                    positive = embed(encoder, tokenizer, p, clip_skip)
                    k = positive.shape[1] // 77
                    negative = embed(encoder, tokenizer, negatives[model], clip_skip, min_chunks=k)
                tensors[key + "/positive"] = positive.float().contiguous()
                tensors[key + "/negative"] = negative.float().contiguous()
                records.append(dict(key=key, model=model, clip_skip=clip_skip, prompt=p, negative=negatives[model],
                                    chunks=k))
    save_file(tensors, os.path.join(OUT, "embeddings.safetensors"))
    with open(os.path.join(OUT, "embeddings.json"), "w") as f:
        json.dump(dict(generator="tools/fixtures_prompts.py", cases=records), f, indent=1)


if __name__ == "__main__":
    main()
