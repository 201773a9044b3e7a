#!/usr/bin/env python3
"""Reference data for vislang's BERT WordPiece tokenizer (tokenizer/wordpiece.cpp).

Writes tests/fixtures/wordpiece/ (committed; tests/test_wordpiece.cpp reads it, no Python needed):
  uncased/, cased/   small vocabularies (WORDPIECE_VOCAB tokens) trained with the `tokenizers`
                     WordPiece trainer on generated text, saved by transformers' save_pretrained
                     (vocab.txt, tokenizer_config.json, ...); blip2/ is uncased/ plus BLIP-2's "[DEC]"
                     bos token, as LAVIS and HF's Blip2 configs add it.
  strings.json.gz    >= 10,000 generated strings (English, accented, decomposed accents, Chinese,
                     Japanese, Korean, Hangul jamo, other scripts, emoji, punctuation runs, words
                     longer than 100 characters, control characters, odd spaces, numbers, special
                     tokens written in the text, random codepoints) and their category.
  ids_<variant>.json.gz  for each variant (a folder, or a vocabulary with other options) the ids of
                     every string from the slow BertTokenizer (transformers 5: BertTokenizerLegacy,
                     pure Python) — what the C++ must match — and, where it differs, from the fast
                     BertTokenizer (the Rust `tokenizers` library).
  cases.json.gz      batches (padding to max_length / longest, truncation, pairs), decode, tokenize,
                     invalid UTF-8 (decoded with errors="replace", as the C++ does).
  unicode.json.gz    NFD/NFC of every codepoint that decomposes or combines and of random mark
                     sequences, and the category of sampled codepoints (tokenizer/unicode.cpp).

    python tools/reference/make_wordpiece_fixtures.py          # the committed fixtures
    python tools/reference/make_wordpiece_fixtures.py --full   # also a 30,522-token vocabulary and
        10,000 strings in /tmp/vislang_wordpiece_full (not committed); run the C++ against it with
        VISLANG_WORDPIECE_FULL=/tmp/vislang_wordpiece_full build/bin/vislang_tests --test-suite=wordpiece

Needs transformers (>= 5, for BertTokenizerLegacy; 4.x: BertTokenizer is the slow one) and tokenizers.
Bump FORMAT when the layout changes; tests/test_wordpiece.cpp checks it.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata
import warnings

FORMAT = 1
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIX_DIR = os.path.join(ROOT, "tests", "fixtures", "wordpiece")
FULL_DIR = "/tmp/vislang_wordpiece_full"
WORDPIECE_VOCAB = 3000
FULL_VOCAB = 30522
N_STRINGS = 10240
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

warnings.filterwarnings("ignore")


def tokenizer_classes():
    import transformers
    from transformers import BertTokenizer
    try:  # transformers 5: BertTokenizer is the fast one; the Python one is BertTokenizerLegacy
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
        Fast = BertTokenizer
    except ImportError:  # transformers 4
        from transformers import BertTokenizerFast as Fast
        Slow = BertTokenizer
    transformers.logging.set_verbosity_error()
    return Slow, Fast


def versions():
    import tokenizers
    import transformers
    return {"python": sys.version.split()[0], "unicodedata": unicodedata.unidata_version,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


# ---------------------------------------------------------------------------------------------------
# Generated text
# ---------------------------------------------------------------------------------------------------
ENGLISH = """the of and to in is was for on that with as by at from his her it an were are which this be
or has had not first one their its new after but who they have two been other when there all time
during into school also city where more world team war year people state between music history use
under some game national life about him would those such only many most part while through because
language model image vision text transformer attention token encoder decoder caption photo dog cat
running jumped quickly beautiful unbelievable internationalization tokenization preprocessing don't
it's we're they've i'm you'll can't won't shouldn't o'clock rock'n'roll e-mail self-driving state-of-the-art
New York London Paris Berlin Tokyo Python BERT GPT ImageNet COCO Flickr NASA UNESCO McDonald iPhone""".split()
ACCENTED = """café naïve Ångström résumé Zürich São Paulo façade jalapeño Đorđe Łódź crème brûlée Ærøskøbing
smørrebrød Ñandú piñata über Mädchen Straße Kraków Dvořák Škoda Reykjavík Þórsmörk Ελλάδα ΟΔΟΣ Σίσυφος
İstanbul ıldız Ĳsselmeer ﬁnancial ﬂower Œuvre œil São Tomé Curaçao naïveté coöperate Björk Ørsted""".split()
HIRAGANA = [chr(c) for c in range(0x3041, 0x3097)]
KATAKANA = [chr(c) for c in range(0x30A1, 0x30FB)] + ["ー"]
CYRILLIC = "Москва привет мир Ёлка ЁЖИК Київ Україна Беларусь".split()
OTHER_SCRIPTS = ("مرحبا بالعالم العربية שלום עולם नमस्ते हिन्दी ภาษาไทย สวัสดี ქართული Հայերեն "
                 "ខ្មែរ ລາວ ᏣᎳᎩ ܐܪܡܝܐ ދިވެހި తెలుగు தமிழ் ಕನ್ನಡ မြန်မာ").split()
EMOJI = ["😀", "👍", "👍🏽", "❤️", "👨‍👩‍👧", "🇯🇵", "🏳️‍🌈", "✈", "☕", "🤖", "🧑‍🚀", "1️⃣", "™", "©", "🀄", "🂡"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + list("¡¿«»‘’“”„‹›–—…·•†‡‰′″§¶¦¬¯°±×÷€£¥¢₹₩、。「」『』【】〈〉《》！？，．：；")
SPACES = [" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2000", "\u2002", "\u2009", "\u200a", "\u202f",
          "\u205f", "\u1680", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1f", "\x85"]
CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x80", "\x9f", "\u200b", "\u200c", "\u200d", "\u200e",
            "\ufeff", "\u00ad", "\ufffd", "\u2060", "\u061c", "\ue000", "\U000f0000", "\U0010fffd", "\u0378",
            "\U000e0001", "\U000e0041"]
COMBINING = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u030c", "\u0323", "\u0327", "\u0328",
             "\u0331", "\u0345", "\u0591", "\u05b0", "\u064b", "\u093c", "\u094d", "\u0e48", "\u1dc0", "\u20d7",
             "\u302a", "\u3099", "\u309a", "\ufe20", "\U0001d165", "\U0001e944"]
SPECIAL_TEXT = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[ SEP ]", "[MASK", "MASK]", "[[MASK]]",
                "[MASK][MASK]", "x[SEP]y", "[DEC]"]


def cjk(rng):
    r = rng.random()
    if r < 0.7:
        return chr(rng.randint(0x4E00, 0x9FFF))
    if r < 0.8:
        return chr(rng.randint(0x3400, 0x4DBF))
    if r < 0.9:
        return chr(rng.randint(0x20000, 0x2A6DF))
    if r < 0.95:
        return chr(rng.randint(0xF900, 0xFAD9))
    return chr(rng.choice([rng.randint(0x2A700, 0x2B739), rng.randint(0x2B740, 0x2B81D), rng.randint(0x2F800, 0x2FA1D)]))


def hangul(rng):
    return chr(rng.randint(0xAC00, 0xD7A3))


def jamo_word(rng):
    # Conjoining jamo: L V (T) sequences that NFC composes into syllables, and stray ones it leaves.
    out = []
    for _ in range(rng.randint(1, 4)):
        out.append(chr(0x1100 + rng.randrange(19)))
        if rng.random() < 0.9:
            out.append(chr(0x1161 + rng.randrange(21)))
        if rng.random() < 0.5:
            out.append(chr(0x11A8 + rng.randrange(27)))
    return "".join(out)


def random_codepoint(rng):
    while True:
        r = rng.random()
        if r < 0.5:
            cp = rng.randrange(0x80, 0x3000)
        elif r < 0.8:
            cp = rng.randrange(0x3000, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


def english_word(rng):
    w = rng.choice(ENGLISH)
    r = rng.random()
    if r < 0.15:
        w = w.capitalize()
    elif r < 0.2:
        w = w.upper()
    return w


def decompose_some(rng, s):
    return unicodedata.normalize("NFD", s) if rng.random() < 0.5 else s


def make_word(rng, cat):
    if cat == "english":
        return english_word(rng)
    if cat == "accented":
        w = rng.choice(ACCENTED)
        r = rng.random()
        if r < 0.25:
            w = unicodedata.normalize("NFD", w)
        elif r < 0.35:
            w = w.upper()
        elif r < 0.45:
            w = "".join(c + rng.choice(COMBINING) if rng.random() < 0.3 else c for c in w)
        return w
    if cat == "chinese":
        return "".join(cjk(rng) for _ in range(rng.randint(1, 6)))
    if cat == "japanese":
        parts = []
        for _ in range(rng.randint(1, 5)):
            k = rng.random()
            parts.append(rng.choice(HIRAGANA) if k < 0.45 else rng.choice(KATAKANA) if k < 0.8 else cjk(rng))
        w = "".join(parts)
        return decompose_some(rng, w) if rng.random() < 0.2 else w
    if cat == "korean":
        if rng.random() < 0.25:
            return jamo_word(rng)
        w = "".join(hangul(rng) for _ in range(rng.randint(1, 4)))
        return unicodedata.normalize("NFD", w) if rng.random() < 0.15 else w
    if cat == "scripts":
        w = rng.choice(CYRILLIC + OTHER_SCRIPTS + ACCENTED[20:28])
        return decompose_some(rng, w) if rng.random() < 0.2 else w
    if cat == "emoji":
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3))) + (english_word(rng) if rng.random() < 0.3 else "")
    if cat == "punct":
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 6)))
    if cat == "long":
        n = rng.choice([95, 99, 100, 101, 102, 120, 150, 300])
        base = rng.choice(["a", "ab", "hello", "é", "e\u0301", "x", "世", "ünï", "naïve"])
        w = (base * (n // len(base) + 1))[:n]
        return w
    if cat == "control":
        w = english_word(rng)
        i = rng.randint(0, len(w))
        return w[:i] + rng.choice(CONTROLS) + w[i:]
    if cat == "numbers":
        return rng.choice([str(rng.randint(0, 10 ** rng.randint(1, 12))), f"{rng.random() * 1000:.3f}",
                           f"{rng.randint(1, 999)},{rng.randint(100, 999)}", "½", "²", "Ⅻ", "٣٤٥", "１２３", "①", "3rd",
                           "1st", "10%", "$5", "€20", "+1-555-0100", "2024-01-31", "12:30", "0x1F", "1e-5"])
    if cat == "special":
        return rng.choice(SPECIAL_TEXT)
    if cat == "random":
        return "".join(random_codepoint(rng) for _ in range(rng.randint(1, 5)))
    raise ValueError(cat)


CATEGORIES = ["english", "accented", "chinese", "japanese", "korean", "scripts", "emoji", "punct", "long",
              "control", "numbers", "special", "random", "mixed", "spaces"]


def make_string(rng, cat):
    if cat == "mixed":
        words = [make_word(rng, rng.choice(CATEGORIES[:13])) for _ in range(rng.randint(1, 10))]
    elif cat == "spaces":
        words = [make_word(rng, rng.choice(["english", "accented", "chinese", "punct"])) for _ in range(rng.randint(1, 6))]
        return "".join(rng.choice(SPACES) * rng.randint(1, 4) + w for w in words) + rng.choice(SPACES + [""])
    else:
        n = rng.randint(1, 3) if cat == "long" else rng.randint(1, 12)
        words = [make_word(rng, cat) if rng.random() < 0.8 else english_word(rng) for _ in range(n)]
    out = []
    for w in words:
        out.append(w)
        r = rng.random()
        out.append("" if r < 0.1 else rng.choice(PUNCT) + " " if r < 0.2 else " ")
    return "".join(out).strip() if rng.random() < 0.9 else "".join(out)


def make_strings(seed, n):
    rng = random.Random(seed)
    fixed = ["", " ", "hello world", "Hello, World!", "unaffable", "café", "cafe\u0301", "CAFÉ", "naïve", "Ångström",
             "Å", "\u212b", "\u0041\u030a", "ΟΔΟΣ", "ΌΣΟΣ ΣΑΣ", "İstanbul", "STRASSE Straße", "ﬁ", "\u0344", "\u0387",
             "\u1100\u1161\u11a8", "한국어", "日本語のテキスト", "中文字符", "hello[MASK]world", "[CLS] x [SEP]",
             "a" * 100, "a" * 101, "é" * 100, "e\u0301" * 60, "\x00\x01\x02", "\ufffd", "\u200b\u200b", "a\u00adb",
             "\u3000\u3000x", "x\u2028y", "x\u0085y", "x\x0by", "x\x1cy", "$^`~", "¿Qué?", "…", "👨‍👩‍👧", "❤️",
             "\U00020000\U0002a6df", "\uf900\ufad9", "\U0002f800", "\u0378", "\ue000", "\U000e0041", "\u0345",
             "\u1e9e", "\u0130\u0131", "ǅ", "ᾼ", "ﬃ", "ß", "\u03a3", "a\u03a3", "a\u03a3b", "a\u03a3.", "\u00c5\u0301"]
    strings = [(s, "fixed") for s in fixed]
    while len(strings) < n:
        cat = CATEGORIES[len(strings) % len(CATEGORIES)]
        strings.append((make_string(rng, cat), cat))
    return strings


def training_text(seed, n):
    """Text for the WordPiece trainer: the same generators, more English so pieces are word-like."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cat = "english" if i % 3 == 0 else CATEGORIES[i % len(CATEGORIES)]
        out.append(make_string(rng, cat))
    return out


# ---------------------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------------------
def train_vocab(texts, lowercase, vocab_size, limit_alphabet):
    from tokenizers import BertWordPieceTokenizer
    tok = BertWordPieceTokenizer(lowercase=lowercase, strip_accents=None if lowercase else False,
                                 handle_chinese_chars=True, clean_text=True)
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, limit_alphabet=limit_alphabet,
                            special_tokens=SPECIALS, wordpieces_prefix="##", show_progress=False)
    vocab = tok.get_vocab()
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def save_folder(Slow, tokens, folder, lowercase, model_max_length, extra=None):
    """vocab.txt as trained, then transformers' own save_pretrained for the config files."""
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in tokens))
    tok = Slow(os.path.join(tmp, "vocab.txt"), do_lower_case=lowercase, model_max_length=model_max_length)
    if extra:
        tok.add_special_tokens(extra)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    tok.save_pretrained(folder)
    shutil.rmtree(tmp)
    return folder


# ---------------------------------------------------------------------------------------------------
# Reference ids
# ---------------------------------------------------------------------------------------------------
def variant_tokenizers(Slow, Fast, folder, options):
    kw = dict(options)
    slow = Slow.from_pretrained(folder, **kw)
    fast = Fast.from_pretrained(folder, **kw)
    return slow, fast


def reference_ids(slow, fast, strings):
    ids, fast_diff = [], {}
    for i, (s, _) in enumerate(strings):
        a = slow.encode(s, add_special_tokens=False)
        b = fast.encode(s, add_special_tokens=False)
        ids.append(a)
        if a != b:
            fast_diff[str(i)] = b
    return ids, fast_diff


def fast_causes(strings, fast_diff, lowercase):
    """Why BertTokenizerFast differs from the slow one, by the first cause that fits each string:
    nfc         the slow one NFC-normalizes (decomposed accents, conjoining jamo, CJK compatibility
                ideographs), the fast one does not
    unassigned  unassigned codepoints (Cn): the slow one drops them as control characters, the fast
                one keeps them (as [UNK])
    sigma       str.lower() writes final sigma, Rust's per-character lowercase does not
    other       anything else (seen: characters newer than the fast library's Unicode tables)"""
    causes = {}
    for i in fast_diff:
        s = strings[int(i)][0]
        if unicodedata.normalize("NFC", s) != s:
            k = "nfc"
        elif any(unicodedata.category(c) == "Cn" for c in s):
            k = "unassigned"
        elif lowercase and "\u03a3" in s:
            k = "sigma"
        else:
            k = "other"
        causes[k] = causes.get(k, 0) + 1
    return causes


def write_gz(path, obj):
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=9) as f:
        f.write(data)
    size = os.path.getsize(path)
    assert size < 1_000_000, f"{path} is {size} bytes, over the 1 MB fixture limit"
    return size


def batch_cases(rng, name, slow, fast, strings):
    cases = []
    texts = [s for s, _ in strings]
    for k in range(48):
        # The last 8 cut and pad on the left (tokenizer_config.json truncation_side / padding_side).
        side = "left" if k >= 40 else "right"
        for t in (slow, fast):
            t.truncation_side = t.padding_side = side
        bsz = rng.randint(1, 5)
        batch = [rng.choice(texts) for _ in range(bsz)]
        pair = [rng.choice(texts) for _ in range(bsz)] if k % 2 else None
        if pair and side == "left":
            # Left truncation of a pair whose second text has no tokens: the slow tokenizer's
            # truncate_sequences turns the empty second text into None and builds "[CLS] a [SEP]"
            # (one [SEP], type ids of a single text) — a quirk the C++ does not copy; keep clear of it.
            pair = [p if slow.encode(p, add_special_tokens=False) else "x" for p in pair]
        max_length = rng.choice([3, 4, 5, 8, 16, 32, 64])
        padding = "max_length" if k % 4 < 2 else "longest"
        args = dict(padding=padding, truncation=True, max_length=max_length, return_token_type_ids=True,
                    return_attention_mask=True)
        ref = slow(batch, pair, **args) if pair else slow(batch, **args)
        fst = fast(batch, pair, **args) if pair else fast(batch, **args)
        case = {"variant": name, "texts": batch, "pairs": pair, "max_length": max_length, "padding": padding,
                "side": side, "ids": ref["input_ids"], "attention_mask": ref["attention_mask"],
                "token_type_ids": ref["token_type_ids"]}
        if fst["input_ids"] != ref["input_ids"] or fst["token_type_ids"] != ref["token_type_ids"]:
            case["fast_ids"] = fst["input_ids"]
        cases.append(case)
    for t in (slow, fast):
        t.truncation_side = t.padding_side = "right"
    # No truncation, padding to the longest; and the model_max_length default.
    batch = texts[:6]
    ref = slow(batch, padding="longest", return_token_type_ids=True)
    cases.append({"variant": name, "texts": batch, "pairs": None, "max_length": 0, "padding": "longest",
                  "truncation": False, "ids": ref["input_ids"], "attention_mask": ref["attention_mask"],
                  "token_type_ids": ref["token_type_ids"]})
    return cases


def decode_cases(rng, name, slow, fast, ids_list):
    cases = []
    n = len(slow)
    for k in range(60):
        if k < 40:
            ids = rng.choice(ids_list)[:20]
            ids = [slow.cls_token_id] + ids + [slow.sep_token_id]
        else:
            ids = [rng.randrange(n) for _ in range(rng.randint(0, 12))]
        for skip in (True, False):
            cases.append({"variant": name, "ids": ids, "skip_special": skip,
                          "text": slow.decode(ids, skip_special_tokens=skip),
                          "fast": fast.decode(ids, skip_special_tokens=skip)})
    return cases


def unicode_cases(rng):
    singles = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if unicodedata.decomposition(c) and not unicodedata.decomposition(c).startswith("<") or unicodedata.combining(c):
            singles.append(c)
        elif 0xAC00 <= cp <= 0xD7A3 and cp % 97 == 0:
            singles.append(c)
    marks = [c for c in singles if unicodedata.combining(c)]
    starters = [c for c in singles if not unicodedata.combining(c)] + list("aeiouAEIOUnNcCsSzZ") + \
        [chr(0x1100 + i) for i in range(19)] + [chr(0x1161 + i) for i in range(21)] + [chr(0x11A8 + i) for i in range(27)]
    seqs = []
    for _ in range(3000):
        seqs.append("".join(rng.choice(marks) if rng.random() < 0.5 else rng.choice(starters)
                            for _ in range(rng.randint(1, 8))))
    norm = []
    for s in singles + seqs:
        d, c = unicodedata.normalize("NFD", s), unicodedata.normalize("NFC", s)
        norm.append([s, None if d == s else d, None if c == s else c])
    cats = {}
    for _ in range(6000):
        cp = rng.randrange(0x110000)
        if not 0xD800 <= cp <= 0xDFFF:
            cats[cp] = unicodedata.category(chr(cp))
    for cp in range(0x80):
        cats[cp] = unicodedata.category(chr(cp))
    return {"format": FORMAT, "versions": versions(), "normalization": norm,
            "categories": [[cp, cat] for cp, cat in sorted(cats.items())]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help=f"also the {FULL_VOCAB}-token check in {FULL_DIR}")
    ap.add_argument("--only-full", action="store_true", help="only the --full check")
    args = ap.parse_args()
    Slow, Fast = tokenizer_classes()
    rng = random.Random(20240531)
    strings = make_strings(1234, N_STRINGS)

    if not args.only_full:
        os.makedirs(FIX_DIR, exist_ok=True)
        train = training_text(99, 20000)
        folders = {}
        for name, lower in (("uncased", True), ("cased", False)):
            tokens = train_vocab(train, lower, WORDPIECE_VOCAB, limit_alphabet=700)
            folders[name] = save_folder(Slow, tokens, os.path.join(FIX_DIR, name), lower, 64)
            print(f"{name}: {len(tokens)} tokens")
        with open(os.path.join(folders["uncased"], "vocab.txt"), encoding="utf-8") as f:
            uncased_tokens = [line.rstrip("\n") for line in f]
        folders["blip2"] = save_folder(Slow, uncased_tokens, os.path.join(FIX_DIR, "blip2"), True, 512,
                                       extra={"bos_token": "[DEC]"})
        # variant: (folder, options passed to from_pretrained — the C++ test passes the same)
        variants = {
            "uncased": ("uncased", {}),
            "cased": ("cased", {}),
            "uncased_keep_accents": ("uncased", {"strip_accents": False}),
            "cased_strip_no_cjk": ("cased", {"strip_accents": True, "tokenize_chinese_chars": False}),
            "blip2": ("blip2", {}),
        }
        write_gz(os.path.join(FIX_DIR, "strings.json.gz"),
                 {"format": FORMAT, "versions": versions(), "strings": [s for s, _ in strings],
                  "categories": [c for _, c in strings]})
        cases = {"format": FORMAT, "batch": [], "decode": [], "tokenize": [], "invalid_utf8": []}
        for name, (folder, options) in variants.items():
            slow, fast = variant_tokenizers(Slow, Fast, os.path.join(FIX_DIR, folder), options)
            ids, fast_diff = reference_ids(slow, fast, strings)
            size = write_gz(os.path.join(FIX_DIR, f"ids_{name}.json.gz"),
                            {"format": FORMAT, "variant": name, "folder": folder, "options": options,
                             "ids": ids, "fast_diff": fast_diff})
            causes = fast_causes(strings, fast_diff, slow.do_lower_case)
            print(f"ids_{name}.json.gz: {len(ids)} strings, {size} bytes; fast differs on {len(fast_diff)}: {causes}")
            if name in ("uncased", "cased", "blip2"):
                cases["batch"] += batch_cases(rng, name, slow, fast, strings)
                cases["decode"] += decode_cases(rng, name, slow, fast, ids)
                for s, _ in strings[:60]:
                    cases["tokenize"].append({"variant": name, "text": s, "tokens": slow.tokenize(s)})
                for raw in (b"abc\xffdef", b"caf\xc3", b"\xe4\xb8", b"x\xed\xa0\x80y", b"\xf0\x9f\x98\x80\xf0\x9f",
                            b"\xc0\xafA", b"na\xcc\x88ive\xf4\x90\x80\x80", b"[CLS\xff]"):
                    text = raw.decode("utf-8", errors="replace")
                    cases["invalid_utf8"].append({"variant": name, "hex": raw.hex(),
                                                  "ids": slow.encode(text, add_special_tokens=False)})
        size = write_gz(os.path.join(FIX_DIR, "cases.json.gz"), cases)
        print(f"cases.json.gz: {len(cases['batch'])} batches, {len(cases['decode'])} decodes, {size} bytes; "
              f"fast batch differs {sum('fast_ids' in c for c in cases['batch'])}, fast decode differs "
              f"{sum(c['fast'] != c['text'] for c in cases['decode'])}")
        size = write_gz(os.path.join(FIX_DIR, "unicode.json.gz"), unicode_cases(rng))
        print(f"unicode.json.gz: {size} bytes")

    if args.full or args.only_full:
        print(f"--full: training a {FULL_VOCAB}-token vocabulary ...")
        train = training_text(7, 200000)
        tokens = train_vocab(train, True, FULL_VOCAB, limit_alphabet=6000)
        os.makedirs(FULL_DIR, exist_ok=True)
        save_folder(Slow, tokens, os.path.join(FULL_DIR, "uncased"), True, 512)
        full_strings = make_strings(4321, 10000)
        slow, fast = variant_tokenizers(Slow, Fast, os.path.join(FULL_DIR, "uncased"), {})
        ids, fast_diff = reference_ids(slow, fast, full_strings)
        with gzip.open(os.path.join(FULL_DIR, "strings.json.gz"), "wt") as f:
            json.dump({"format": FORMAT, "strings": [s for s, _ in full_strings],
                       "categories": [c for _, c in full_strings]}, f)
        with gzip.open(os.path.join(FULL_DIR, "ids_uncased.json.gz"), "wt") as f:
            json.dump({"format": FORMAT, "variant": "uncased", "folder": "uncased", "options": {}, "ids": ids,
                       "fast_diff": fast_diff}, f)
        print(f"--full: {len(tokens)} tokens, {len(full_strings)} strings in {FULL_DIR}; "
              f"fast differs on {len(fast_diff)}: {fast_causes(full_strings, fast_diff, True)}")


if __name__ == "__main__":
    main()
