#!/usr/bin/env python3
"""Reference data for vislang's CLIP tokenizer (tokenizer/clip_tokenizer.cpp).

Writes two kinds of output, both committed:

  tables   tokenizer/unicode_tables.inc and tokenizer/html_entities.inc: the Unicode facts the C++
           text cleaning needs, taken from the *running* Python and `regex` module, so the C++ agrees
           with them codepoint for codepoint (Python's unicodedata and `regex` may be on different
           Unicode versions; each table comes from the component the reference really uses).
  fixtures tests/fixtures/tokenizer/*: a seeded corpus of >= 10,000 strings with the reference ids
           from open_clip's SimpleTokenizer (the installed package, its own code), run four ways:
             a   OpenAI clip semantics  (special tokens <|startoftext|>, whitespace by regex \\s), no ftfy
             o   open_clip semantics    (special tokens <start_of_text>, whitespace by str.split), no ftfy
             fa  as a, with ftfy.fix_text (what OpenAI's clip.tokenize really does)
             fo  as o, with ftfy.fix_text (what open_clip.tokenize really does)
           "o", "fa", "fo" are stored only where they differ from the previous variant. Plus
           tokenize() cases (context length, truncate, too-long error), text-cleaning cases, invalid
           UTF-8 cases, and a small Hugging Face vocab.json/merges.txt pair with permuted ids.

    python tools/reference/make_tokenizer_fixtures.py            # both
    python tools/reference/make_tokenizer_fixtures.py --tables   # only the .inc tables

Needs: open_clip_torch, ftfy, regex (and transformers, optional, for a cross-check of the HF files).
The BPE file is read from ../shared/data/clip (or --bpe). Bump FORMAT when the fixture layout changes;
tests/test_tokenizer.cpp checks it.
"""
import argparse
import gzip
import html
import io
import json
import os
import random
import sys
import types
import unicodedata

import regex

FORMAT = 1
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TOK_DIR = os.path.join(ROOT, "tokenizer")
FIX_DIR = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
DEFAULT_BPE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))

MAX_CP = 0x110000
PAT_TAIL = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def versions():
    import ftfy
    import open_clip
    return {"python": sys.version.split()[0], "unicodedata": unicodedata.unidata_version,
            "regex": regex.__version__, "ftfy": ftfy.__version__, "open_clip": open_clip.__version__}


# ---------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------
def runs(values):
    """[(start, value)] for each maximal run of equal values over codepoints 0..MAX_CP-1."""
    out = []
    prev = None
    for cp, v in enumerate(values):
        if v != prev:
            out.append((cp, v))
            prev = v
    return out


def token_classes():
    """Class of every codepoint under the tokenizer pattern, tested with the pattern itself.

    The alternatives after the special tokens and contractions are [\\p{L}]+, [\\p{N}] and
    [^\\s\\p{L}\\p{N}]+ under re.IGNORECASE; IGNORECASE changes membership for a few codepoints
    (U+0345 matches none of them), so each codepoint is matched against the real compiled pattern.
    """
    named = regex.compile(r"(?P<L>[\p{L}]+)|(?P<N>[\p{N}])|(?P<S>\s)|(?P<P>[^\s\p{L}\p{N}]+)", regex.IGNORECASE)
    alone = {k: regex.compile(p, regex.IGNORECASE) for k, p in
             (("L", r"[\p{L}]"), ("N", r"[\p{N}]"), ("S", r"\s"), ("P", r"[^\s\p{L}\p{N}]"))}
    code = {"L": 1, "N": 2, "S": 3, "P": 0, None: 4}  # 0 = punctuation/other (the default), 4 = skipped
    out = []
    for cp in range(MAX_CP):
        ch = chr(cp)
        m = named.fullmatch(ch)
        k = m.lastgroup if m else None
        # A codepoint must be in exactly one class (or none), else the run logic in C++ is wrong.
        member = [n for n, p in alone.items() if p.fullmatch(ch)]
        assert member == ([k] if k else []), (hex(cp), member, k)
        out.append(code[k])
    return out


def sigma_context_classes():
    """For Python's Final_Sigma rule in str.lower(): 1 = cased (and not case-ignorable),
    2 = case-ignorable, 0 = neither. Derived from str.lower() itself (CPython's
    handle_capital_sigma skips case-ignorable characters before it ever asks 'cased?')."""
    out = []
    for cp in range(MAX_CP):
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:
            out.append(0)
            continue
        if (ch + "\u03a3").lower()[-1] == "\u03c2":
            out.append(1)
        elif ("A" + ch + "\u03a3").lower()[-1] == "\u03c2":
            out.append(2)
        else:
            out.append(0)
    return out


def lower_map():
    out = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        lo = chr(cp).lower()
        if lo != chr(cp):
            assert len(lo) <= 3
            out.append((cp, [ord(c) for c in lo]))
    return out


def ascii_fold_extras():
    """Non-ASCII codepoints that an ASCII letter in the pattern matches under re.IGNORECASE."""
    out = []
    for a in "abcdefghijklmnopqrstuvwxyz":
        p = regex.compile(regex.escape(a), regex.IGNORECASE)
        for cp in range(128, MAX_CP):
            if p.fullmatch(chr(cp)):
                out.append((cp, a))
    return sorted(out)


def write_tables():
    v = versions()
    head = ("// GENERATED by tools/reference/make_tokenizer_fixtures.py --tables; do not edit.\n"
            f"// Python {v['python']} (unicodedata {v['unicodedata']}), regex {v['regex']}.\n")

    cls = token_classes()
    cls_runs = runs(cls)
    sig_runs = runs(sigma_context_classes())
    lows = lower_map()
    folds = ascii_fold_extras()
    py_space = [cp for cp in range(MAX_CP) if chr(cp).isspace()]
    re_space = [cp for cp in range(MAX_CP) if regex.fullmatch(r"\s", chr(cp))]

    f = io.StringIO()
    f.write(head)
    f.write("// Included by tokenizer/text_clean.cpp only.\n\n")
    f.write("// Python str.isspace() (used by str.strip() and str.split()).\n")
    f.write("static const char32_t kPySpace[] = {" + ", ".join(hex(c) for c in py_space) + "};\n\n")
    f.write("// `regex` module \\s (used by re.sub(r'\\s+', ' ', t) and the pre-tokenizer).\n")
    f.write("static const char32_t kRegexSpace[] = {" + ", ".join(hex(c) for c in re_space) + "};\n\n")
    f.write("// Pre-tokenizer class runs {first codepoint, class}; a run lasts until the next entry.\n")
    f.write("// 0 = [^\\s\\p{L}\\p{N}], 1 = \\p{L}, 2 = \\p{N}, 3 = \\s, 4 = matched by no alternative (skipped).\n")
    f.write(f"static const CpRun kTokenClassRuns[] = {{  // {len(cls_runs)} runs\n")
    for i in range(0, len(cls_runs), 8):
        f.write("  " + " ".join(f"{{{hex(a)}, {b}}}," for a, b in cls_runs[i:i + 8]) + "\n")
    f.write("};\n\n")
    f.write("// Final_Sigma context of str.lower(): 0 = neither, 1 = cased, 2 = case-ignorable.\n")
    f.write(f"static const CpRun kSigmaContextRuns[] = {{  // {len(sig_runs)} runs\n")
    for i in range(0, len(sig_runs), 8):
        f.write("  " + " ".join(f"{{{hex(a)}, {b}}}," for a, b in sig_runs[i:i + 8]) + "\n")
    f.write("};\n\n")
    f.write("// str.lower() of every codepoint it changes (full mapping: up to 3 codepoints; 0 = unused),\n")
    f.write("// sorted. U+03A3 is here with its non-final form; the Final_Sigma rule is in code.\n")
    f.write(f"static const LowerEntry kLowerMap[] = {{  // {len(lows)} entries\n")
    for i in range(0, len(lows), 4):
        parts = []
        for cp, lo in lows[i:i + 4]:
            lo = lo + [0] * (3 - len(lo))
            parts.append(f"{{{hex(cp)}, {{{', '.join(hex(x) for x in lo)}}}}},")
        f.write("  " + " ".join(parts) + "\n")
    f.write("};\n\n")
    f.write("// Codepoints above ASCII that an ASCII letter of the pattern matches under re.IGNORECASE.\n")
    f.write("static const AsciiFold kAsciiFoldExtras[] = {" +
            " ".join(f"{{{hex(cp)}, '{a}'}}," for cp, a in folds) + "};\n")
    with open(os.path.join(TOK_DIR, "unicode_tables.inc"), "w") as out:
        out.write(f.getvalue())

    ents = sorted(html.entities.html5.items())
    g = io.StringIO()
    g.write(head)
    g.write("// Python's html.unescape data: html.entities.html5 (names with and without ';', sorted by\n")
    g.write("// byte order) and html._invalid_charrefs / html._invalid_codepoints. Included by\n")
    g.write("// tokenizer/text_clean.cpp only.\n\n")
    g.write(f"static const HtmlEntity kHtmlEntities[] = {{  // {len(ents)} entries\n")
    for name, val in ents:
        assert name.isascii() and len(val) <= 2
        cps = [ord(c) for c in val] + [0] * (2 - len(val))
        g.write(f'  {{"{name}", {{{hex(cps[0])}, {hex(cps[1])}}}}},\n')
    g.write("};\n\n")
    inv = sorted(html._invalid_charrefs.items())
    g.write("// Numeric references replaced by another character (e.g. &#128; -> U+20AC).\n")
    g.write("static const CharrefFix kInvalidCharrefs[] = {" +
            " ".join(f"{{{hex(k)}, {hex(ord(v))}}}," for k, v in inv) + "};\n\n")
    g.write("// Numeric references that produce nothing.\n")
    g.write("static const char32_t kInvalidCodepoints[] = {" +
            ", ".join(hex(c) for c in sorted(html._invalid_codepoints)) + "};\n")
    with open(os.path.join(TOK_DIR, "html_entities.inc"), "w") as out:
        out.write(g.getvalue())
    print(f"wrote tokenizer/unicode_tables.inc ({len(cls_runs)} class runs, {len(sig_runs)} sigma runs, "
          f"{len(lows)} lower entries) and tokenizer/html_entities.inc ({len(ents)} entities)")


# ---------------------------------------------------------------------------------------------------
# Reference tokenizers: open_clip's SimpleTokenizer, in the four variants described above
# ---------------------------------------------------------------------------------------------------
class _NoFtfy:
    @staticmethod
    def fix_text(s):
        return s


class Reference:
    def __init__(self, bpe_path):
        import ftfy
        import open_clip.tokenizer as oct
        self.oct = oct
        self.ftfy = ftfy
        self.oc = oct.SimpleTokenizer(bpe_path)  # open_clip semantics
        # OpenAI clip/simple_tokenizer.py semantics: the same vocabulary and BPE code, but the special
        # tokens are spelled <|startoftext|>/<|endoftext|> and whitespace_clean is
        # regex.sub(r'\s+', ' ', t).strip() instead of ' '.join(t.split()).
        ai = oct.SimpleTokenizer(bpe_path)
        for old, new in (("<start_of_text>", "<|startoftext|>"), ("<end_of_text>", "<|endoftext|>")):
            i = ai.encoder.pop(old)
            ai.encoder[new] = i
            ai.decoder[i] = new
            del ai.cache[old]
            ai.cache[new] = new
        ai.pat = regex.compile(r"<\|startoftext\|>|<\|endoftext\|>|" + PAT_TAIL, regex.IGNORECASE)
        ai.clean_fn = lambda t: regex.sub(r"\s+", " ", oct.basic_clean(t)).strip().lower()
        self.ai = ai

    def _with_ftfy(self, on, fn, *args):
        self.oct.ftfy = self.ftfy if on else _NoFtfy
        try:
            return fn(*args)
        finally:
            self.oct.ftfy = self.ftfy

    def encode(self, text, openai=True, ftfy=False):
        return self._with_ftfy(ftfy, (self.ai if openai else self.oc).encode, text)

    def clean(self, text, openai=True):
        return self._with_ftfy(False, (self.ai if openai else self.oc).clean_fn, text)

    def openclip_tokenize(self, text, context_length):
        return self._with_ftfy(False, self.oct.SimpleTokenizer.__call__, self.oc, [text], context_length)[0].tolist()

    def openai_tokenize(self, text, context_length, truncate):
        """clip.tokenize(text, context_length, truncate) of OpenAI's clip/clip.py, on one string."""
        sot, eot = self.ai.encoder["<|startoftext|>"], self.ai.encoder["<|endoftext|>"]
        tokens = [sot] + self.encode(text) + [eot]
        if len(tokens) > context_length:
            if not truncate:
                return None, len(tokens)
            tokens = tokens[:context_length]
            tokens[-1] = eot
        return tokens + [0] * (context_length - len(tokens)), len(tokens)


# ---------------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------------
WORDS = """a an the of and to in is was it for on with as at by from this that be are or not have had
you he she they we I my your his her their our photo picture image drawing painting rendering close-up
dog cat bird car plane boat house tree flower mountain river city street person man woman child people
red green blue yellow black white small large big little old new beautiful dark bright cute happy sad
running jumping sitting standing flying swimming playing eating sleeping looking walking holding
one two three four five first second last many some several of-the-art state-of-the-art e-mail
New York Paris Tokyo London CLIP OpenAI GPT ViT ResNet ImageNet COCO JPEG PNG HTTP HTML URL API
""".split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
                "'Ll", "'rE", "’s", "’ll", "n't", "N'T", "'x", "''", "'"]
ACCENTED = "café naïve résumé jalapeño façade Ångström Zürich Øresund São Paulo Kraków Dvořák Łódź " \
           "İstanbul ıi Ĳssel Straße STRASSE ß ẞ œuvre Æsir ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ Σίσυφος Москва ПРИВЕТ " \
           "Ελληνικά Việt Nam Tiếng Việt ǅemal ǲ ǈ ǋ ﬁne ﬂow ﬀ ſtraße K Å Ω"
SCRIPTS = ["日本語のテキスト", "東京タワー", "中文字符", "汉字", "漢字", "한국어 문장", "ひらがな", "カタカナ",
           "ﾊﾝｶｸ", "Ｆｕｌｌｗｉｄｔｈ", "עברית", "العربية", "مرحبا بالعالم", "हिन्दी", "বাংলা", "ไทย", "ພາສາລາວ",
           "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "ᚠᚢᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝐁𝐨𝐥𝐝", "𠀀𠀁", "𓀀𓀁", "ꦗꦮ"]
NUMBERS = ["0", "7", "42", "1234567890", "3.14159", "-12", "+1", "1,000,000", "1e-3", "0x1F", "50%", "$9.99",
           "€5", "£3", "¥100", "½", "¾", "²", "³", "①", "Ⅻ", "ⅻ", "٣٤٥", "۱۲", "१२३", "๓", "〇", "𝟙𝟚", "10th",
           "2nd", "3rd", "1/2", "24/7", "12:30", "2024-01-01"]
PUNCT = list(".,;:!?-—–…\"'`()[]{}<>/\\|@#$%^&*_+=~") + ["...", "!!!", "?!", "--", "“", "”", "‘", "’", "«",
                                                          "»", "„", "¿", "¡", "·", "•", "§", "¶", "©", "®",
                                                          "™", "°", "±", "×", "÷", "→", "←", "⇒", "∞", "≠"]
EMOJI = ["😀", "👍", "👍🏽", "❤️", "❤", "🔥", "✨", "🎉", "🐶", "🐱", "🚀", "🌍", "☕", "⭐", "✅", "❌",
         "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏿‍🚀", "🏳️‍🌈", "🏴‍☠️", "👁️‍🗨️", "🇺🇸", "🇯🇵", "🇩🇪🇫🇷", "🇬🇧",
         "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "#️⃣", "1️⃣", "©️", "☺", "♥", "✌🏻"]
ENTITIES = ["&amp;", "&amp;amp;", "&amp;amp;amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&#X27",
            "&#39", "&apos;", "&nbsp;", "&eacute", "&eacute;", "&Eacute;", "&copy", "&copy;", "&hellip;",
            "&mdash;", "&notit;", "&notin;", "&ampx", "&amp", "&AMP;", "&AMP", "&lt3", "&#0;", "&#13;",
            "&#128;", "&#x80;", "&#x9F;", "&#150;", "&#xD800;", "&#xDFFF;", "&#1114111;", "&#1114112;",
            "&#x110000;", "&#99999999999999999999999;", "&#xFFFFFFFFFFFFFFFFFF;", "&#1;", "&#x1;", "&#11;",
            "&#x7F;", "&#xFDD0;", "&#65535;", "&#xFFFE;", "&#x10FFFF;", "&#x1F600;", "&#128512;", "&#",
            "&#;", "&#x;", "&#xZ;", "&", "& ", "&;", "&&", "&bogus;", "&a;", "&zwj;", "&zwnj;", "&NotEqualTilde;",
            "&nGt;", "&ThickSpace;", "&fjlig;", "&acE;", "&#x00041;", "&#065", "&#65abc", "&#x41g",
            "&frac12;", "&sup2;", "&CounterClockwiseContourIntegral;", "&CounterClockwiseContourIntegralX;"]
WS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\u00a0", "\u3000", "\u2009", "\u200a", "\u2028",
      "\u2029", "\u202f", "\u205f", "\u1680", "\x85", "\x1c", "\x1d", "\x1e", "\x1f", "\u200b", "\u180e", "\ufeff"]
URLS = ["https://example.com", "http://www.example.org/path/to/page.html?q=1&amp;lang=en#frag",
        "https://en.wikipedia.org/wiki/Caf%C3%A9", "www.openai.com/research", "ftp://files.example.net/a_b-c.tar.gz",
        "user.name+tag@example.co.uk", "@someone", "#TBT", "https://t.co/AbC123xYz", "C:\\Users\\me\\file.txt",
        "/usr/local/bin", "git@github.com:org/repo.git", "https://例え.jp/パス"]
SPECIAL = ["<|startoftext|>", "<|endoftext|>", "<|STARTOFTEXT|>", "<|EndOfText|>", "<start_of_text>",
           "<end_of_text>", "<START_OF_TEXT>", "<|ſtartoftext|>", "<|startoftext", "<|endoftext|>>", "<<|endoftext|>"]
ODD = ["Ã©", "donâ€™t", "â€œquotedâ€\x9d", "Ã¼ber", "\x00", "a\x00b", "\x7f", "\x1b[31mred\x1b[0m", "\u202etxet",
       "\ufeffbom", "e\u0301", "a\u0345b", "\u0345", "Σ\u0345", "ΑΣ\u0345", "ΑΣ\u0301", "ΑΣ.", "ΑΣΑ", "Σ", "aΣ",
       "aΣb", "a\u00adΣ", "'ſ", "'ſ'S", "it'ſ", "\ufffd", "\U0010ffff", "\U000e0001", "\ue000", "\U000f0000",
       "\u0378", "\u2fff", "\U0001fbf0", "\U00031350", "ǅ", "ǈǋ", "ﬀ", "İ", "i̇", "ΐ", "ŉ", "ǰ"]

BLOCKS = [(0x20, 0x7e), (0xa0, 0x24f), (0x250, 0x2ff), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x52f),
          (0x530, 0x5ff), (0x600, 0x6ff), (0x900, 0xdff), (0xe00, 0xeff), (0x1000, 0x1fff), (0x2000, 0x2bff),
          (0x2c00, 0x2fff), (0x3000, 0x30ff), (0x3100, 0x4dbf), (0x4e00, 0x9fff), (0xa000, 0xd7ff),
          (0xe000, 0xf8ff), (0xf900, 0xfffd), (0x10000, 0x1ffff), (0x1f300, 0x1faff), (0x20000, 0x3ffff),
          (0x40000, 0xdffff), (0xe0000, 0xe01ef), (0xf0000, 0x10ffff)]


def random_cp(rng):
    while True:
        lo, hi = rng.choice(BLOCKS)
        cp = rng.randint(lo, hi)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


def casing(rng, w):
    r = rng.random()
    return w.upper() if r < 0.15 else w.capitalize() if r < 0.35 else w


def piece(rng):
    r = rng.random()
    if r < 0.40:
        w = casing(rng, rng.choice(WORDS))
        if rng.random() < 0.12:
            w += casing(rng, rng.choice(CONTRACTIONS))
        return w
    if r < 0.47: return rng.choice(ACCENTED.split())
    if r < 0.53: return rng.choice(SCRIPTS)
    if r < 0.61: return rng.choice(NUMBERS)
    if r < 0.70: return rng.choice(PUNCT)
    if r < 0.76: return rng.choice(EMOJI)
    if r < 0.82: return rng.choice(ENTITIES)
    if r < 0.85: return rng.choice(URLS)
    if r < 0.86: return rng.choice(SPECIAL)
    if r < 0.88: return rng.choice(ODD)
    if r < 0.93: return "".join(random_cp(rng) for _ in range(rng.randint(1, 4)))
    return casing(rng, "".join(rng.choice("bcdfghjklmnpqrstvwxyz" if i % 2 else "aeiouy")
                               for i in range(rng.randint(1, 12))))


COMMON_WS = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", " \n "]


def sep(rng):
    r = rng.random()
    if r < 0.80: return " "
    if r < 0.88: return ""
    if r < 0.98: return rng.choice(COMMON_WS)
    return "".join(rng.choice(WS) for _ in range(rng.randint(1, 3)))


def sentence(rng, n):
    parts = []
    for _ in range(n):
        parts.append(piece(rng))
        parts.append(sep(rng))
    s = "".join(parts)
    if rng.random() < 0.2:
        s = rng.choice(WS) + s
    return s


def hand_written():
    out = ["", " ", "   ", "\t\n", "a", "A", "I", "Hello, World!", "a photo of a dog.", "A PHOTO OF A CAT",
           "I'm here", "YOU'LL SEE", "It'S", "IT'S", "WE'VE", "They'RE", "she'D", "don't", "DON'T", "don’t",
           "'s", "''s", "'''", "rock'n'roll", "o'clock", "'twas", "y'all'd've", "'S'T'RE'VE'M'LL'D",
           "3.14", "1,000,000", "2024", "2.5x", "a1b2c3", "x²+y²", "Ⅻ Ⅻ", "٣٤", "½ cup",
           "&amp;", "&amp;amp;", "&#39;", "&eacute", "&lt;b&gt;bold&lt;/b&gt;", "Tom &amp; Jerry",
           "&lt;|startoftext|&gt;", "<|startoftext|>a photo<|endoftext|>", "<start_of_text>x<end_of_text>",
           "café", "CAFÉ", "cafe\u0301", "naïve", "日本語", "中文 English 混合", "👍", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵",
           "🏳️‍🌈 pride", "a\u00a0b", "a\u3000b", "a\tb\nc", "  leading and trailing  ", "\x1c", "a\x1cb",
           "\x1c a \x1f", "x\x1d\x1ey", "\u200b", "a\u200bb", "https://example.com/a?b=c&amp;d=e",
           "the quick brown fox jumps over the lazy dog", "THE QUICK BROWN FOX", "ΣΑΣ ΟΔΟΣ", "ὈΔΥΣΣΕΎΣ",
           "İstanbul", "STRASSE Straße", "ǅ", "ﬁ", "Ｆｕｌｌ", "Ã©", "donâ€™t", "\ufeffbom", "e\u0301",
           "a" * 300, "ab" * 200, "Hello" * 50, "!" * 100, "1" * 100, "日" * 100, "👍" * 40,
           "lowercaseuppercaseUPPERCASE", "supercalifragilisticexpialidocious", "Pneumonoultramicroscopic"]
    out += ENTITIES + SPECIAL + ODD + EMOJI + URLS + NUMBERS + SCRIPTS + WS
    out += ACCENTED.split()
    out += [w + c for w in ("it", "IT", "you", "we", "he") for c in CONTRACTIONS]
    return out


PROMPT_TEMPLATES = ["a photo of a {}.", "a bad photo of the {}.", "a close-up photo of my {}.",
                    "itap of a {}.", "a painting of the {}.", "a {} in the {}.", "the {} is {} and {}.",
                    "{} {} {}", "A {} {} on a {} day", "there's a {} next to the {}!", "{}, {}, and {}",
                    "What's the {} doing? It's {}."]


def prompt(rng):
    t = rng.choice(PROMPT_TEMPLATES)
    return t.format(*(casing(rng, rng.choice(WORDS)) for _ in range(t.count("{}"))))


def corpus(seed=20240611, n_total=10500):
    """[(text, category)]: hand (edge cases), plain (caption-like prompts in plain ASCII), mixed
    (random mixtures of everything), cps (random codepoints from all planes), long (> 1000 chars)."""
    rng = random.Random(seed)
    out = dict.fromkeys(hand_written(), "hand")  # insertion-ordered, first category wins
    for _ in range(6):
        out.setdefault(sentence(rng, rng.randint(250, 500)), "long")
    for _ in range(1500):
        out.setdefault(prompt(rng), "plain")
    while len(out) < n_total:
        r = rng.random()
        if r < 0.82:
            out.setdefault(sentence(rng, rng.randint(1, 12)), "mixed")
        else:
            out.setdefault("".join(random_cp(rng) for _ in range(rng.randint(1, 8))), "cps")
    for s in out:
        s.encode("utf-8")  # no lone surrogates
    return list(out.items())


def clean_cases(rng):
    """Inputs for the text-cleaning stages on their own (html.unescape, whitespace, lower)."""
    base = ENTITIES + ODD + WS + SPECIAL + ACCENTED.split() + [
        "&amp;lt;", "&amp;#39;", "&&amp;", "&amp&amp;", "&ampamp;", "&notin", "&notinx", "&ampersand",
        "&abcdefghijklmnopqrstuvwxyzabcdefghijklmn;", "&a\rb;", "&\u00e9;", "&lt\u00e9", "&#x41;&#x42;",
        "&&#38;#38;", "&#38;amp;", "&#x26;lt;", " \x1c\x1c ", "\x1c", "\x1f a \x1c", "  a  ", "\u3000a\u3000",
        "a \u200b b", "a\x85b", "ΑΣ ΑΣ. ΑΣ\u0345", "ΣΣ", "aΣ\u0301b", "aΣ\u0301", "İİ", "ǅǄǆ", "ẞ", "Ω K Å"]
    for _ in range(300):
        base.append("".join(rng.choice([rng.choice(ENTITIES), rng.choice(WS), rng.choice(ODD), "Σ", "A",
                                        rng.choice(ACCENTED.split()), random_cp(rng)])
                            for _ in range(rng.randint(1, 6))))
    return list(dict.fromkeys(base))


def utf8_cases(rng):
    """Byte strings, mostly invalid UTF-8, with Python's bytes.decode('utf-8', 'replace')."""
    pieces = [b"a", b" ", b"\x80", b"\xbf", b"\xc0", b"\xc1\xbf", b"\xc2", b"\xc2\xa9", b"\xdf\xbf", b"\xe0",
              b"\xe0\x80\x80", b"\xe0\xa0", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80", b"\xef\xbf\xbd",
              b"\xf0", b"\xf0\x80\x80\x80", b"\xf0\x90", b"\xf0\x90\x80", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf",
              b"\xf4\x90\x80\x80", b"\xf5", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"caf\xc3\xa9", b"\xc3",
              b"\xe6\x97\xa5", b"\xe6\x97", b"'s", b"&amp;"]
    out = [b"", b"\xff", b"\xc3\x28", b"\xe2\x82", b"abc\xe2\x82def", b"\xf0\x9f\x98"]
    for _ in range(250):
        if rng.random() < 0.5:
            out.append(b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))))
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))))
    return list(dict.fromkeys(out))


def tokenize_cases(ref):
    long_words = " ".join(["photo"] * 100)
    n75 = " ".join(["dog"] * 75)  # 75 ids + SOT + EOT = 77: fits exactly
    n76 = " ".join(["dog"] * 76)  # 78: one too many
    texts = [("", 77), ("a photo of a dog", 77), ("A PHOTO OF A CAT!!!", 77), (n75, 77), (n76, 77),
             (long_words, 77), ("a photo of a dog", 5), ("a photo of a dog", 6), ("a photo of a dog", 2),
             ("hello", 3), ("日本語のテキスト 👨‍👩‍👧‍👦 " * 10, 77), ("&amp;amp; it's", 16),
             ("<|startoftext|> hello <|endoftext|>", 10)]
    out = []
    for text, ctx in texts:
        for truncate in (False, True):
            ids, n = ref.openai_tokenize(text, ctx, truncate)
            out.append({"flavor": "openai", "text": text, "context_length": ctx, "truncate": truncate,
                        "n_tokens": n, "expected": ids})
        # open_clip.tokenize always truncates (its SimpleTokenizer.__call__).
        out.append({"flavor": "openclip", "text": text, "context_length": ctx, "truncate": True,
                    "expected": ref.openclip_tokenize(text, ctx)})
    return out


def hf_files(bpe_path, n_merges, seed):
    """A small HF CLIPTokenizer-format vocab.json/merges.txt from the first n_merges merges of the real
    BPE, with the ids shuffled (a loader that assumed the BPE file's order would fail)."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + n_merges]]
    import open_clip.tokenizer as oct
    b2u = list(oct.bytes_to_unicode().values())
    tokens = b2u + [v + "</w>" for v in b2u] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    ids = list(range(len(tokens)))
    random.Random(seed).shuffle(ids)
    vocab = dict(zip(tokens, ids))
    vocab_json = json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    merges_txt = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    return vocab, merges, vocab_json, merges_txt


def hf_reference(ref, vocab, merges):
    """A copy of the OpenAI-semantics reference with the small HF vocabulary swapped in."""
    import copy
    t = copy.copy(ref.ai)
    t.encoder = dict(vocab)
    t.decoder = {v: k for k, v in vocab.items()}
    t.bpe_ranks = dict(zip(merges, range(len(merges))))
    t.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
    return t


def write_fixtures(bpe_path):
    ref = Reference(bpe_path)
    os.makedirs(FIX_DIR, exist_ok=True)
    items = corpus()
    texts = [t for t, _ in items]
    assert len(texts) >= 10000, len(texts)

    vocab, merges, vocab_json, merges_txt = hf_files(bpe_path, 2000, seed=7)
    hf = hf_reference(ref, vocab, merges)
    n_hf = 800

    import collections
    stats = collections.Counter()  # (what, category) -> count; category "all" too
    count = collections.Counter(c for _, c in items)
    count["all"] = len(items)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        header = {"format": FORMAT, "generator": "tools/reference/make_tokenizer_fixtures.py", "n": len(texts),
                  "n_hf": n_hf, **versions()}
        gz.write((json.dumps(header) + "\n").encode())
        for i, t in enumerate(texts):
            a = ref.encode(t, openai=True)
            o = ref.encode(t, openai=False)
            fa = ref.encode(t, openai=True, ftfy=True)
            fo = ref.encode(t, openai=False, ftfy=True)
            rec = {"t": t, "c": items[i][1], "a": a}
            if o != a:
                rec["o"] = o
                stats["a_vs_o", items[i][1]] += 1
                stats["a_vs_o", "all"] += 1
            if fa != a:
                rec["fa"] = fa
                stats["a_vs_fa", items[i][1]] += 1
                stats["a_vs_fa", "all"] += 1
            if fo != o:
                rec["fo"] = fo
                stats["o_vs_fo", items[i][1]] += 1
                stats["o_vs_fo", "all"] += 1
            if i < n_hf:
                rec["h"] = ref._with_ftfy(False, hf.encode, t)
            gz.write((json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
    with open(os.path.join(FIX_DIR, "corpus.jsonl.gz"), "wb") as f:
        f.write(buf.getvalue())

    with open(os.path.join(FIX_DIR, "hf_vocab.json"), "w", encoding="utf-8") as f:
        f.write(vocab_json)
    with open(os.path.join(FIX_DIR, "hf_merges.txt"), "w", encoding="utf-8") as f:
        f.write(merges_txt)
    try:  # cross-check that the files really are HF format: transformers' own CLIPTokenizer reads them
        from transformers import CLIPTokenizer
        ht = CLIPTokenizer(os.path.join(FIX_DIR, "hf_vocab.json"), os.path.join(FIX_DIR, "hf_merges.txt"))
        probe = ["a photo of a dog", "the cat sat on the mat", "hello world"]
        for p in probe:
            got = ht(p, add_special_tokens=False)["input_ids"]
            assert got == hf.encode(p), (p, got, hf.encode(p))
        print("transformers CLIPTokenizer agrees with the HF reference on", len(probe), "probes")
    except ImportError as e:
        print("note: transformers cross-check skipped:", e)

    rng = random.Random(99)
    cc = []
    for t in clean_cases(rng):
        cc.append({"in": t, "unescape1": html.unescape(t), "openai": ref.clean(t, True), "openclip": ref.clean(t, False)})
    uc = []
    for b in utf8_cases(rng):
        d = b.decode("utf-8", "replace")
        uc.append({"hex": b.hex(), "decoded": d, "ids": ref.encode(d)})
    dc = []  # decode: ids of corpus strings, and random id lists (partial UTF-8 sequences, specials)
    for t in texts[:300]:
        ids = ref.encode(t)
        dc.append({"ids": ids, "text": ref.ai.decode(ids)})
    for _ in range(200):
        ids = [rng.randrange(len(ref.ai.encoder)) for _ in range(rng.randint(1, 12))]
        dc.append({"ids": ids, "text": ref.ai.decode(ids)})
    other = {"format": FORMAT, "tokenize": tokenize_cases(ref), "clean": cc, "utf8": uc, "decode": dc}
    with open(os.path.join(FIX_DIR, "cases.json.gz"), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:  # mtime=0: reproducible bytes
            gz.write(json.dumps(other, ensure_ascii=False).encode())

    total = sum(os.path.getsize(os.path.join(FIX_DIR, x)) for x in os.listdir(FIX_DIR))
    n = len(texts)
    print(f"wrote {n} corpus strings to {os.path.relpath(FIX_DIR, ROOT)} ({total} bytes in all)")
    for key, what in (("a_vs_fa", "OpenAI semantics: ftfy vs no ftfy"),
                      ("o_vs_fo", "open_clip semantics: ftfy vs no ftfy"),
                      ("a_vs_o", "OpenAI vs open_clip semantics (no ftfy)")):
        print(f"  {what} differ on " + ", ".join(
            f"{c} {stats[key, c]}/{count[c]} ({stats[key, c] / count[c]:.1%})" for c in sorted(count)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bpe", default=DEFAULT_BPE)
    ap.add_argument("--tables", action="store_true", help="write only the .inc tables")
    ap.add_argument("--fixtures", action="store_true", help="write only the fixtures")
    args = ap.parse_args()
    if not args.fixtures:
        write_tables()
    if not args.tables:
        write_fixtures(args.bpe)


if __name__ == "__main__":
    main()
