#!/usr/bin/env python3
"""Writes the CLIP tokenizer reference ids that Tests/AnySizeTests/TokenizerTests.swift compares against.

Output, under Tests/AnySizeTests/Fixtures/tokenizer/:
  corpus.json   ~230 prompts with transformers' CLIPTokenizer ids for the full CLIP vocabulary (built from
                open_clip's bpe_simple_vocab_16e6.txt.gz, the table AnySize bundles), SD 1.x folder config
                (pad <|endoftext|>) and SD 2.x folder config (pad "!"); plus ids of ~30 prompts for each
                tiny tokenizer folder below.
  classes.json  how tokenizers' regex engine classes every Unicode scalar for CLIP's split regex
                (\\p{L}, \\p{N}, \\s as ranges; the rest is "other").
  tiny/         first 500 merges: vocab.json + merges.txt + SD 1.5-style tokenizer_config.json / special_tokens_map.json
  tiny-sd2/     the same with SD 2.1-style configs (pad "!")
  tiny-json/    tokenizer.json (merges as ["a", "b"] pairs) + tokenizer_config.json, as transformers 5 saves tiny/
  tiny-json-legacy/  tokenizer.json with merges as "a b" strings, no config files

Stored input_ids drop the trailing pad ids after the end token (the script checks they are pads); the
test pads them back to 77.

transformers 5 has only the tokenizers-backed CLIPTokenizer (no ftfy / BasicTokenizer path), so whether
ftfy is installed does not matter; the script blocks `import ftfy` anyway (as if it were not installed,
what a plain `pip install transformers` gives) and records that.

Run with the project venv (transformers 5.23.0, tokenizers 0.23.3, open_clip_torch 3.3.0):
  /work/venv/bin/python tools/fixtures_tokenizer.py
"""
import gzip
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata

sys.modules["ftfy"] = None  # `import ftfy` now raises ImportError, as without the package

import tokenizers
import transformers
from tokenizers import Regex, normalizers, pre_tokenizers
from transformers import CLIPTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "AnySizeTests", "Fixtures", "tokenizer")
# open_clip itself imports ftfy, so only its files are used.
BPE_GZ = os.path.join(importlib.util.find_spec("open_clip").submodule_search_locations[0], "bpe_simple_vocab_16e6.txt.gz")
SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab(merge_count):
    """CLIP / open_clip vocabulary construction with the first merge_count merges."""
    lines = gzip.open(BPE_GZ).read().decode("utf-8").split("\n")
    merges = lines[1:1 + merge_count]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split(" ")) for m in merges]
    vocab += [BOS, EOS]
    return {t: i for i, t in enumerate(vocab)}, merges


def added(content, normalized=True):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": normalized,
            "rstrip": False, "single_word": False}


def write_folder(path, vocab, merges, pad):
    """vocab.json + merges.txt + the tokenizer_config.json / special_tokens_map.json layout of the
    runwayml SD 1.5 (pad <|endoftext|>) and stabilityai SD 2.1 (pad "!") tokenizer folders."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(path, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {"add_prefix_space": False, "bos_token": added(BOS), "do_lower_case": True, "eos_token": added(EOS),
              "errors": "replace", "model_max_length": 77, "name_or_path": "openai/clip-vit-large-patch14",
              "pad_token": pad, "special_tokens_map_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer", "unk_token": added(EOS)}
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    strip = lambda d: {k: v for k, v in d.items() if k != "__type"}
    special = {"bos_token": strip(added(BOS)), "eos_token": strip(added(EOS)), "pad_token": pad,
               "unk_token": strip(added(EOS))}
    with open(os.path.join(path, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)


def references(tok, prompt):
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    full = tok(prompt, padding="max_length", max_length=77, truncation=True)["input_ids"]
    assert len(full) == 77
    keep = min(len(ids), 75) + 2
    assert all(i == tok.pad_token_id for i in full[keep:]), (prompt, full)
    assert full[0] == tok.bos_token_id and full[keep - 1] == tok.eos_token_id
    return ids, full[:keep]


def corpus_prompts():
    p = [
        "", " ", "     ", "\t\n  \r\n", "a photo of a cat", "A Photo Of A Cat", "A PHOTO OF A CAT",
        "masterpiece, best quality, 1girl, solo, looking at viewer",
        "(masterpiece:1.2), (best quality:1.1), [cat|dog], {blue sky}, <lora:foo:0.8>",
        "((extremely detailed)), (((beautiful))), [[[ugly]]], (worst quality:1.4), (low quality:1.4)",
        "a portrait of an old man, oil painting, by greg rutkowski and alphonse mucha, trending on artstation",
        "cyberpunk city at night, neon lights, rain, reflections, 8k, uhd, octane render, unreal engine 5",
        "landscape, mountains, lake, sunset, golden hour, volumetric lighting, highly detailed, sharp focus",
        "a cat's toy", "the dog's bone isn't here, they're gone, we've seen, I'm sure, you'll see, he'd go",
        "DON'T STOP, IT'S MINE, THEY'RE HERE", "o'clock rock'n'roll", "''s ''t '''re", "'s", "'", "''", "ʼs ’s ‘t",
        "don’t can’t won’t", "a'b'c'd", "x'llama y'dog z'mmm", "'S 'T 'RE 'VE 'M 'LL 'D",
        "1234567890", "3.14159 2,718 1e-10 -42 +7", "x1y2z3", "v1.5 v2.1 sd-xl 512x512 768x768 1024x1024",
        "image 0001.png 2023-12-31 23:59:59", "१२३ ٤٥٦ 七八九 ⅫⅣ ½ ¾ ² ³ ① ⑩", "１２３ ＡＢＣ ａｂｃ",
        "café résumé naïve coöperate façade jalapeño piñata über straße", "Ångström Øresund Æsir Œuvre ŁÓDŹ ĞÜŞİÖÇ",
        "İstanbul ıstanbul I i İ ı", "Ǆ ǅ ǆ ǈ ǋ", "ΣΟΦΙΑ σοφια ΣΑΣ ς σ Σ", "Ελληνικά: Αθήνα, Θεσσαλονίκη",
        "Привет, мир! Москва ЁЛКА ёлка", "Україна Ґ ґ Їжак", "Ⴀ Ⴁ ᲐᲑ ⴀ", "Ꭰ Ꭱ ꭰ", "𐐀𐐁 𐐨", "ẞ ß",
        "e\u0301 e\u0300 a\u0308 o\u0303 n\u0303", "\u212b \u2126 \u212a", "q\u0307\u0323 d\u0323\u0307",
        "\u1100\u1161\u11a8 \u1112\u1161\u11ab", "한국어 텍스트 안녕하세요", "ｶﾀｶﾅ ｱｲｳ", "Ａ Ｂ Ｃ",
        "ﬁ ﬂ ﬀ ﬃ", "℃ ℉ № ™ ℠ ℡", "x² y³ H₂O CO₂", "µ μ Ω ω",
        "日本語のテキスト、東京タワー。", "中文提示词：一只可爱的猫，高清，杰作", "漢字かなカナ混じり文", "繁體中文 簡体字",
        "𠀀𠀁 𪚥 𩸽", "ㄅㄆㄇ ㄈ", "ทดสอบภาษาไทย", "हिन्दी पाठ नमस्ते", "বাংলা", "தமிழ்", "ગુજરાતી",
        "العربية نص تجريبي، مرحبا بالعالم", "שלום עולם", "فارسی: سلام", "ܫܠܡܐ", "ދިވެހި",
        "አማርኛ", "ᚠᚢᚦ", "ᓀᐦᐃᔭᐍᐏᐣ", "ꦗꦮ", "𓀀𓀁 𓂀", "ᠮᠣᠩᠭᠣᠯ",
        "😀 😃 😄 😁", "🐱🐶🐭", "👍🏽 👍🏿 👋🏻", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 🏴‍☠️", "🇺🇸 🇯🇵 🇩🇪 🇫🇷",
        "🏴󠁧󠁢󠁳󠁣󠁴󠁿 scotland", "❤️ ❤ ♥️ ☺️", "✨sparkles✨", "#️⃣ 1️⃣ *️⃣", "🧑‍🚀 astronaut, 👩🏽‍💻 coder",
        "a cat 🐈 on a mat", "ヽ(°〇°)ﾉ (╯°□°)╯︵ ┻━┻ ¯\\_(ツ)_/¯", "♠ ♣ ♥ ♦ ★ ☆ ☀ ☁",
        "a\tb\tc", "line one\nline two\n\nline four", "crlf\r\nline", "a  b   c    d", "   leading and trailing   ",
        "nbsp\u00a0here and\u2003em space\u3000ideographic", "zero\u200bwidth\u200cjoiner\u200dmark\u2060wj\ufeffbom",
        "a\u00adb soft hyphen", "control\x00null", "bell\x07 backspace\x08 esc\x1b[31m red", "\x1c\x1d\x1e\x1f unit sep",
        "del\x7f c1\x80\x85\x9f", "line\u2028sep\u2029para", "\ufffd replacement \ufffe\uffff",
        "private \ue000\uf8ff \U000f0000", "variation\ufe0f selector\ufe0e", "tag \U000e0041\U000e0042",
        "&amp; &lt;tag&gt; &quot;quoted&quot; &#39;apos&#39; &nbsp; &#x1F600;", "<b>bold</b> <i>it</i> <br/>",
        "https://example.com/path?query=1&b=2#frag", "user@example.com", "C:\\Users\\name\\file.txt",
        "$100 €50 £30 ¥1000 ₹ ₿", "100% 50/50 3:2 a+b=c x*y a^b a~b a|b a\\b", "!!!", "???", "...", "…", "---", "___",
        "hello!", "hello!!", "hello! world!", "! ! !", "wow!!! amazing!?!", "a!b!c", "!start", "end!",
        "“smart quotes” ‘single’ «guillemets» „low“", "em—dash en–dash ‐ hyphen", "• bullet · middle dot",
        "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "x<|startoftext|>y<|endoftext|>z",
        "<|ENDOFTEXT|>", "a <|StartOfText|> b", "<|endoftext|><|endoftext|>", "<|endoftext", "endoftext|>",
        "<|startoftext|!>", "!<|endoftext|>", "<<|endoftext|>>", "<| endoftext |>",
        "ALLCAPS PROMPT WITH SHOUTING", "MiXeD cAsE pRoMpT", "camelCaseWord PascalCaseWord snake_case_word",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab", "ll ll ll", "the the the the",
        "x", "I", "a", ",", ".", "😀", "日", "\u0301", "\u0300\u0301\u0302", "٣", "ǅ",
        "4k, 8k, hdr, uhd, dslr, f/1.8, 85mm, iso 100, 1/250s",
        "score_9, score_8_up, score_7_up, source_anime, rating_safe",
        "BREAK a new chunk BREAK another", "prompt with AND keyword AND another",
        "[from:to:0.5] [a:b:10] [remove::0.3] [::add:0.2]", "(word:-0.5) (word:0) (word:1e3)",
        "\U0000088f\U00000c5c\U0000a7ce new in unicode 17", "\U00018db3\U0003240f",
        "\U00001c89 \U00001c8a", "Ⓐ Ⓑ ⓐ ⓑ 🅐", "𝐀𝐁𝐂 𝒶𝒷𝒸 𝔸𝔹ℂ", "ꜲꜳꜴ", "ǰ ǰ", "ŉ ŉ", "ΐ ΰ",
    ]
    long_a = ", ".join(["masterpiece", "best quality", "ultra detailed", "illustration", "1girl", "solo",
                        "long hair", "blue eyes", "school uniform", "cherry blossoms", "wind", "petals",
                        "sunlight", "depth of field", "bokeh", "smile", "looking at viewer", "outdoors",
                        "spring", "pastel colors", "soft lighting", "cinematic composition", "highres",
                        "intricate details", "sharp focus", "vibrant", "8k wallpaper", "dynamic angle",
                        "floating hair", "glowing", "sparkles", "white dress", "ribbon", "city skyline"] * 3)
    long_b = " ".join(["a breathtaking view of an ancient city built into the side of a colossal mountain"] * 12)
    long_c = "photo of a cat " + "very " * 80 + "cute"
    long_d = ",".join(str(i) for i in range(120))
    long_e = "日本の美しい風景、" * 30
    long_f = "😀" * 50
    p += [long_a, long_b, long_c, long_d, long_e, long_f, long_a.upper(), long_a.replace(", ", " ")]

    rng = random.Random(1234)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\x1c\x1f\x85",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿĀāĂăĄąĆćĈĉŒœŠšŸŽžƒ",
        "\u0300\u0301\u0302\u0303\u0308\u0323\u0327\u0345\u20dd\u0e31\u093f",
        "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΣΩάέήίόύώ",
        "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЁЖ",
        "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
        "あいうえおかきくけこアイウエオカキクケコ",
        "가각간갇갈감갑강개객",
        "😀😂🥰😎🤖👾🎨🌸🌊🔥✨⭐🍕🐉🦄\u200d\ufe0f🏽",
        "٠١٢٣٤٥٦٧٨٩०१२३੧੨੩ⅠⅡⅢ¼½¾①②③",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    ]
    for n in range(70):
        length = rng.randint(1, 40)
        if n % 7 == 6:
            # any scalar: unassigned, private use, newest letters
            chars = [chr(rng.choice([rng.randint(0, 0xD7FF), rng.randint(0xE000, 0x10FFFF),
                                     rng.randint(0, 0x3000)])) for _ in range(length)]
        else:
            chosen = rng.sample(pools, rng.randint(1, 4))
            chars = [rng.choice(rng.choice(chosen)) for _ in range(length)]
        p.append("".join(chars))
    return p


def unicode_classes():
    split = pre_tokenizers.Split(Regex(SPLIT), behavior="removed", invert=True)
    ws = normalizers.Replace(Regex(r"\s+"), " ")
    ranges = {"L": [], "N": [], "S": []}
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        pieces = [x for x, _ in split.pre_tokenize_str("a" + c)]
        if pieces == ["a"]:
            kind = "S"
        elif pieces == ["a" + c]:
            kind = "L"
        else:
            kind = "N" if [x for x, _ in split.pre_tokenize_str(c + "!")] == [c, "!"] else None
        assert (ws.normalize_str("a" + c + "b") == "a b") == (kind == "S"), hex(cp)
        if kind is None:
            continue
        r = ranges[kind]
        if r and r[-1][1] == cp - 1:
            r[-1][1] = cp
        else:
            r.append([cp, cp])
    return ranges


def ftfy_importable():
    try:
        import ftfy  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    assert transformers.__version__.startswith("5."), transformers.__version__
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    vocab, merges = clip_vocab(49152 - 256 - 2)
    assert len(vocab) == 49408

    prompts = corpus_prompts()
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(os.path.join(tmp, "sd1"), vocab, merges, EOS)
        write_folder(os.path.join(tmp, "sd2"), vocab, merges, "!")
        sd1 = CLIPTokenizer.from_pretrained(os.path.join(tmp, "sd1"))
        sd2 = CLIPTokenizer.from_pretrained(os.path.join(tmp, "sd2"))
        # Well-known ids of openai/clip-vit-large-patch14.
        assert sd1("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert (sd1.pad_token_id, sd2.pad_token_id) == (49407, 0)
        entries = []
        for text in prompts:
            ids1, full1 = references(sd1, text)
            ids2, full2 = references(sd2, text)
            entry = {"text": text, "ids": ids1, "sd1": full1, "sd2": full2}
            if ids2 != ids1:
                entry["ids2"] = ids2
            entries.append(entry)

    tiny_vocab, tiny_merges = clip_vocab(500)
    write_folder(os.path.join(OUT, "tiny"), tiny_vocab, tiny_merges, EOS)
    write_folder(os.path.join(OUT, "tiny-sd2"), tiny_vocab, tiny_merges, "!")
    CLIPTokenizer.from_pretrained(os.path.join(OUT, "tiny")).save_pretrained(os.path.join(OUT, "tiny-json"))
    for name in os.listdir(os.path.join(OUT, "tiny-json")):
        assert name in ("tokenizer.json", "tokenizer_config.json"), name
    with open(os.path.join(OUT, "tiny-json", "tokenizer.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert isinstance(saved["model"]["merges"][0], list)
    saved["model"]["merges"] = [" ".join(pair) for pair in saved["model"]["merges"]]
    os.makedirs(os.path.join(OUT, "tiny-json-legacy"))
    with open(os.path.join(OUT, "tiny-json-legacy", "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(saved, f, ensure_ascii=False, separators=(",", ":"))

    tiny_prompts = [p for p in prompts if len(p) < 120][::6][:32] + [
        "hello!! world", "<|ENDOFTEXT|> and <|StartOfText|>", "a <|endoftext|> b"]
    tiny = {}
    for folder in ["tiny", "tiny-sd2", "tiny-json", "tiny-json-legacy"]:
        tok = CLIPTokenizer.from_pretrained(os.path.join(OUT, folder))
        rows = []
        for text in tiny_prompts:
            ids, full = references(tok, text)
            rows.append({"text": text, "ids": ids, "input_ids": full})
        tiny[folder] = {"pad_id": tok.pad_token_id, "prompts": rows}

    corpus = {
        "generator": "tools/fixtures_tokenizer.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "open_clip_torch": importlib.metadata.version("open_clip_torch"), "python_unicodedata": unicodedata.unidata_version,
                     "ftfy_importable": ftfy_importable()},
        "prompts": entries,
        "tiny": tiny,
    }
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(corpus, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(OUT, "classes.json"), "w") as f:
        json.dump(unicode_classes(), f, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, files in os.walk(OUT) for n in files)
    print(f"{len(entries)} prompts, {len(tiny_prompts)} tiny prompts x {len(tiny)} folders, {total / 1024:.0f} KB in {OUT}")


if __name__ == "__main__":
    sys.exit(main())
