"""Write the golden reference files in tests/golden/ from llama.cpp (via llama-cpp-python).

    /opt/ref/bin/python tools/make_golden.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf

llama-cpp-python takes a quarter of an hour to build, so CI never runs this: the JSON it writes
is committed, and tests/test_golden.py compares smolrt against it. Running it twice gives
byte-identical files (greedy decoding only, fixed thread count, sorted JSON keys).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import llama_cpp
import numpy as np

REPO = Path(__file__).resolve().parent.parent
GOLDEN_DIR = REPO / "tests" / "golden"

CONTINUATION_TOKENS = 64

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"

# Phrasings were picked so that most continuations open with a long run of confident tokens
# (top-2 margin well above numeric noise); "What is the capital of France?" was dropped
# because this model's first answer token is a near-tie (margin 0.09, "L'" vs the rest).
QUESTIONS = [
    "Tell me the capital of France.",
    "Write a haiku.",
    "Explain recursion to a beginner.",
    "Write Python code to reverse a list.",
    "Translate to French: The cat is sleeping on the warm windowsill.",
    "Give me a list of 3 fruits.",
    "A farmer has 12 cows and buys 7 more, then sells 5. How many cows does he have now?",
    "Write the opening paragraph of a story about a lighthouse keeper.",
    "What are the health benefits of drinking water?",
    "How do I make a cup of tea?",
]

# Each entry: (text, [(add_special, parse_special), ...]). Plain text is tokenized without
# specials; a few plain texts also with add_special (this model's vocab says add_bos is false,
# so it must add nothing); chat markup under every combination, since parse_special is where
# tokenizers disagree.
PLAIN = [(False, False)]
WITH_SPECIAL_FLAGS = [(False, False), (True, True)]
ALL_FLAGS = [(False, False), (False, True), (True, False), (True, True)]

CORPUS: list[tuple[str, list[tuple[bool, bool]]]] = [
    # plain English
    ("Hello, world!", WITH_SPECIAL_FLAGS),
    ("The quick brown fox jumps over the lazy dog.", WITH_SPECIAL_FLAGS),
    ("Once upon a time, in a land far, far away, there lived a curious little robot.", PLAIN),
    ("Hello", PLAIN),
    ("hello", PLAIN),
    ("HELLO WORLD", PLAIN),
    # leading / trailing spaces and whitespace runs
    (" Hello", PLAIN),
    ("Hello ", PLAIN),
    ("   leading and trailing   ", PLAIN),
    ("two  spaces   three    four", PLAIN),
    ("tab\tseparated\tvalues", PLAIN),
    ("\t\tindented with tabs", PLAIN),
    ("line one\nline two\n", PLAIN),
    ("paragraph\n\n\nafter three newlines", PLAIN),
    ("  \n  ", PLAIN),
    ("\n", PLAIN),
    ("\r\nwindows\r\nline endings\r\n", PLAIN),
    ("trailing newlines\n\n", PLAIN),
    ("mixed \t \n \t whitespace", PLAIN),
    # digits
    ("12345", PLAIN),
    ("3.14159", PLAIN),
    ("1,000,000", PLAIN),
    ("In 2024 there were 365 days, 8760 hours and 525600 minutes.", PLAIN),
    ("0x1F 0b1010 1e-9 -42", PLAIN),
    # contractions
    ("I'm here", PLAIN),
    ("don't stop", PLAIN),
    ("they'll see", PLAIN),
    ("WE'RE LOUD", PLAIN),
    ("It's, you've, she'd, I'd've", PLAIN),
    ("rock 'n' roll's", PLAIN),
    # punctuation runs
    ("Wait... what?!?!", PLAIN),
    ("!!!???...,,,;;;", PLAIN),
    ("--- *** ___ ===", PLAIN),
    ('"quoted" and (parenthesised) [bracketed] {braced}', PLAIN),
    # unicode
    ("café résumé naïve", PLAIN),
    ("El niño pequeño", PLAIN),
    ("Über Größe müssen", PLAIN),
    ("Καλημέρα κόσμε", PLAIN),
    ("Привет, мир!", PLAIN),
    ("日本語のテキスト", PLAIN),
    ("中文分词测试", PLAIN),
    ("안녕하세요 세계", PLAIN),
    ("مرحبا بالعالم", PLAIN),
    ("नमस्ते दुनिया", PLAIN),
    ("math: ∑ ∫ √ ≠ ≤ ∞ → λ", PLAIN),
    # emoji
    ("I love pizza 🍕", PLAIN),
    ("family 👨‍👩‍👧 here", PLAIN),
    ("flags 🇫🇷🇯🇵", PLAIN),
    ("thumbs 👍🏽 👋🏿", PLAIN),
    ("😀😃😄😁", PLAIN),
    # code
    ("def add(a, b):\n    return a + b\n", PLAIN),
    ("for i in range(10):\n\tprint(i ** 2)", PLAIN),
    ('fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!("{:?}", v);\n}', PLAIN),
    ('{"name": "smolrt", "version": 1, "tags": ["a", "b"], "ok": true}', PLAIN),
    ('<div class="box"><p>Hi &amp; bye</p></div>', PLAIN),
    ("if (x != 0 && y >= 1) { return x->y; }", PLAIN),
    # URLs
    ("https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#top", PLAIN),
    ("mail me at someone@example.com", PLAIN),
    # chat markup and special tokens
    ("<|im_start|>user\nhi<|im_end|>\n", ALL_FLAGS),
    ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>assistant\n", ALL_FLAGS),
    ("<|endoftext|>", ALL_FLAGS),
    ("text before<|im_end|>text after", ALL_FLAGS),
    (" <|im_start|> spaced <|im_end|> ", ALL_FLAGS),
    ("<|im_start|><|im_end|><|endoftext|>", ALL_FLAGS),
    ("<|im_start", ALL_FLAGS),
    ("<file_sep>main.py\n<jupyter_code>x = 1", ALL_FLAGS),
    ("<|not_a_token|>", ALL_FLAGS),
    # edge cases
    ("", ALL_FLAGS),
    (" ", PLAIN),
    ("a", PLAIN),
    ("supercalifragilisticexpialidocious" * 3, PLAIN),
    ("Pneumonoultramicroscopicsilicovolcanoconiosis", PLAIN),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", PLAIN),
    ("Mixed: café 123 🍕 <b>bold</b> don't\t日本\n  end", WITH_SPECIAL_FLAGS),
]


def tokenize_cases(llm: llama_cpp.Llama) -> list[dict]:
    cases = []
    for text, flag_sets in CORPUS:
        for add_special, parse_special in flag_sets:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)
            # What a "skip special tokens" detokenize should give: the parsed control tokens
            # vanish, everything else (including unparsed "<|...|>" text) stays.
            skipped = llm.detokenize(ids, special=False).decode("utf-8")
            cases.append(
                {
                    "text": text,
                    "add_special": add_special,
                    "parse_special": parse_special,
                    "ids": ids,
                    "detokenized_skip_special": skipped,
                }
            )
    return cases


def logits_at(llm: llama_cpp.Llama, position: int) -> np.ndarray:
    return np.asarray(llm.scores[position], dtype=np.float32)


def top2(logits: np.ndarray) -> tuple[int, float]:
    """The argmax and its lead over the runner-up (0.0 means an exact tie)."""
    best = int(np.argmax(logits))  # first index on ties, as a plain argmax would pick
    second = np.partition(logits, -2)[-2]
    return best, float(logits[best] - second)


def greedy_case(llm: llama_cpp.Llama, question: str) -> dict:
    prompt = CHAT.format(system=SYSTEM, question=question)
    prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    llm.reset()
    llm.eval(prompt_ids)
    continuation: list[int] = []
    margins: list[float] = []
    # Decoded one token at a time, as a server would, and never stopped at EOS: the test wants
    # exactly CONTINUATION_TOKENS positions to compare.
    for _ in range(CONTINUATION_TOKENS):
        token, margin = top2(logits_at(llm, llm.n_tokens - 1))
        continuation.append(token)
        margins.append(round(margin, 4))
        llm.eval([token])
    text = llm.detokenize(continuation, special=True).decode("utf-8", errors="replace")
    # What a stream shows: control tokens such as <|im_end|> print nothing.
    shown = llm.detokenize(continuation, special=False).decode("utf-8", errors="replace")

    # The same tokens fed in one pass, as smolrt's teacher_forced_argmax does. llama.cpp's own
    # one-pass and token-by-token logits differ by up to ~0.6 in a top-2 margin (different
    # kernels, F16 KV cache), so the one-pass argmax is kept too: it is the like-for-like
    # reference for a one-pass check, and where it differs from the greedy token is a near-tie.
    llm.reset()
    llm.eval(prompt_ids + continuation[:-1])
    forced = [top2(logits_at(llm, len(prompt_ids) - 1 + k)) for k in range(CONTINUATION_TOKENS)]
    return {
        "prompt": prompt,
        "prompt_ids": prompt_ids,
        "continuation_ids": continuation,
        "continuation_text": text,
        "continuation_text_skip_special": shown,
        "top2_margins": margins,
        "teacher_forced_ids": [t for t, _ in forced],
        "teacher_forced_margins": [round(m, 4) for _, m in forced],
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, payload: dict) -> int:
    data = json.dumps(payload, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    path.write_text(data, encoding="utf-8")
    return len(data.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR)
    args = parser.parse_args(argv)

    llm = llama_cpp.Llama(
        model_path=str(args.model),
        n_ctx=2048,
        n_threads=2,
        n_threads_batch=2,
        logits_all=True,
        seed=0,
        verbose=False,
    )
    header = {
        "model": args.model.name,
        # Lets the test skip, rather than fail, when pointed at a different model file.
        "model_sha256": sha256_of(args.model),
        "llama_cpp_version": llama_cpp.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)

    cases = tokenize_cases(llm)
    size = write_json(args.out / "tokenize.json", {**header, "cases": cases})
    texts = len({c["text"] for c in cases})
    print(f"tokenize.json: {len(cases)} cases over {texts} strings, {size} bytes")
    for c in cases:
        detok = llm.detokenize(c["ids"], special=True).decode("utf-8", errors="replace")
        if detok != c["text"]:
            print(f"  llama.cpp does not round-trip {c['text']!r} -> {detok!r}")

    prompts = [greedy_case(llm, q) for q in QUESTIONS]
    size = write_json(args.out / "greedy.json", {**header, "prompts": prompts})
    print(f"greedy.json: {len(prompts)} prompts x {CONTINUATION_TOKENS} tokens, {size} bytes")
    for p in prompts:
        near = sum(m < 0.5 for m in p["top2_margins"])
        flips = sum(a != b for a, b in zip(p["continuation_ids"], p["teacher_forced_ids"], strict=True))
        print(
            f"  min margin {min(p['top2_margins']):.4f}, {near} steps under 0.5, "
            f"{flips} one-pass argmax flips: {p['continuation_text']!r}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
