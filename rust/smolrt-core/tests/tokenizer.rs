//! Tokenizer behaviour on a small hand-made byte-level vocab, plus an opt-in comparison against
//! ids produced by llama.cpp for a real model.

use smolrt_core::tokenizer::{IncrementalDecoder, Tokenizer, TokenizerSpec};
use smolrt_core::ErrorCode;

/// GPT-2's byte → stand-in character map, written independently of the crate's own table so the
/// two check each other.
fn stand_in(b: u8) -> char {
    let keeps_itself = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if keeps_itself(b) {
        return char::from(b);
    }
    let shifted = (0..b).filter(|&x| !keeps_itself(x)).count() as u32;
    char::from_u32(256 + shifted).unwrap()
}

fn level(s: &str) -> String {
    s.bytes().map(stand_in).collect()
}

const ENDOFTEXT: u32 = 0;
const IM_START: u32 = 1;
const IM_END: u32 = 2;
const TOOL: u32 = 3; // user-defined
const FIRST_BYTE: u32 = 4;

/// Merges, highest priority first. Byte-level text, as stored in GGUF files.
const MERGES: &[&str] = &[
    "l l", "h e", "he ll", "hell o", "Ġ h", "Ġh ello", "Ġ Ġ", "Ġ b", "1 2", "e x", "ex t",
];

fn spec(pre: &str) -> TokenizerSpec {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"]
        .map(String::from)
        .to_vec();
    let mut token_types = vec![3, 3, 3, 4];
    for b in 0..=255u8 {
        tokens.push(stand_in(b).to_string());
        token_types.push(1);
    }
    for m in MERGES {
        tokens.push(m.replace(' ', ""));
        token_types.push(1);
    }
    TokenizerSpec {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        token_types,
        merges: MERGES.iter().map(|s| s.to_string()).collect(),
        bos_id: Some(IM_START),
        eos_id: Some(ENDOFTEXT),
        eot_id: None,
        unk_id: None,
        pad_id: None,
        add_bos: false,
    }
}

fn tok(pre: &str) -> Tokenizer {
    Tokenizer::from_spec(spec(pre)).expect("hand-made spec loads")
}

fn id(t: &Tokenizer, text: &str) -> u32 {
    t.token_id(&level(text))
        .unwrap_or_else(|| panic!("no token {text:?}"))
}

fn byte_id(b: u8) -> u32 {
    FIRST_BYTE + u32::from(b)
}

#[test]
fn merges_apply_in_rank_order() {
    let t = tok("smollm");
    assert_eq!(t.encode("hello", false, false).unwrap(), [id(&t, "hello")]);
    // "Ġ h" ranks below "h e", so "h" is gone before "Ġ h" could apply: the vocab entry
    // "Ġhello" is never reached. Greedy longest-match would get this wrong.
    assert_eq!(
        t.encode(" hello", false, false).unwrap(),
        [byte_id(b' '), id(&t, "hello")]
    );
    // "ext" needs "ex" first: "text" → t + ext.
    assert_eq!(
        t.encode("text", false, false).unwrap(),
        [byte_id(b't'), id(&t, "ext")]
    );
    // "he ll" needs both halves: "hel" has "h e" but no "ll", so it stays he + l.
    assert_eq!(
        t.encode("hel", false, false).unwrap(),
        [id(&t, "he"), byte_id(b'l')]
    );
}

#[test]
fn equal_rank_merges_go_left_to_right() {
    let t = tok("smollm");
    assert_eq!(
        t.encode("lll", false, false).unwrap(),
        [id(&t, "ll"), byte_id(b'l')]
    );
}

#[test]
fn emoji_without_merges_falls_back_to_byte_tokens() {
    let t = tok("smollm");
    let ids = t.encode("🙂", false, false).unwrap();
    let expected: Vec<u32> = "🙂".bytes().map(byte_id).collect();
    assert_eq!(ids, expected);
    assert_eq!(t.decode(&ids, false).unwrap(), "🙂");
}

#[test]
fn smollm_splits_every_digit_but_gpt2_keeps_numbers_whole() {
    let smol = tok("smollm");
    assert_eq!(
        smol.encode("12", false, false).unwrap(),
        [byte_id(b'1'), byte_id(b'2')]
    );
    let gpt2 = tok("gpt-2");
    assert_eq!(gpt2.encode("12", false, false).unwrap(), [id(&gpt2, "12")]);
    assert!(smol.warnings().is_empty(), "{:?}", smol.warnings());
}

#[test]
fn whitespace_run_keeps_its_last_space_for_the_next_word() {
    let t = tok("smollm");
    // "a   b" pre-tokenizes to "a", "  ", " b".
    assert_eq!(
        t.encode("a   b", false, false).unwrap(),
        [byte_id(b'a'), id(&t, "  "), id(&t, " b")]
    );
    // Trailing whitespace stays one run.
    assert_eq!(
        t.encode("a  ", false, false).unwrap(),
        [byte_id(b'a'), id(&t, "  ")]
    );
}

#[test]
fn control_tokens_are_parsed_only_on_request() {
    let t = tok("smollm");
    let text = "<|im_start|>hello<|im_end|>";
    assert_eq!(
        t.encode(text, false, true).unwrap(),
        [IM_START, id(&t, "hello"), IM_END]
    );
    let plain = t.encode(text, false, false).unwrap();
    assert!(
        !plain.contains(&IM_START) && !plain.contains(&IM_END),
        "{plain:?}"
    );
    assert_eq!(t.decode(&plain, false).unwrap(), text);
}

#[test]
fn user_defined_tokens_are_always_recognised_and_always_shown() {
    let t = tok("smollm");
    assert_eq!(
        t.encode("<tool>hello", false, false).unwrap(),
        [TOOL, id(&t, "hello")]
    );
    assert_eq!(t.decode(&[TOOL, IM_END], true).unwrap(), "<tool>");
    assert!(t.is_special(TOOL) && t.is_special(IM_END) && !t.is_special(byte_id(b'a')));
}

#[test]
fn decode_skip_special_drops_control_tokens() {
    let t = tok("smollm");
    let ids = [IM_START, id(&t, "hello"), IM_END];
    assert_eq!(t.decode(&ids, true).unwrap(), "hello");
    assert_eq!(
        t.decode(&ids, false).unwrap(),
        "<|im_start|>hello<|im_end|>"
    );
}

#[test]
fn decode_rejects_unknown_ids() {
    let t = tok("smollm");
    let err = t.decode(&[t.vocab_size() as u32], false).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

#[test]
fn decode_replaces_a_cut_character() {
    let t = tok("smollm");
    let bytes = "🙂".as_bytes();
    assert_eq!(
        t.decode(&[byte_id(bytes[0]), byte_id(b'a')], false)
            .unwrap(),
        "\u{FFFD}a"
    );
}

#[test]
fn bos_added_only_when_model_and_caller_both_ask() {
    let mut s = spec("smollm");
    s.add_bos = true;
    let t = Tokenizer::from_spec(s).unwrap();
    assert_eq!(
        t.encode("hello", true, false).unwrap(),
        [IM_START, id(&t, "hello")]
    );
    assert_eq!(t.encode("hello", false, false).unwrap(), [id(&t, "hello")]);
    assert_eq!(t.encode("", true, false).unwrap(), [IM_START]);
    let t = tok("smollm");
    assert_eq!(t.encode("hello", true, false).unwrap(), [id(&t, "hello")]);
}

#[test]
fn add_bos_default_follows_llama_cpp() {
    assert!(TokenizerSpec::default_add_bos(Some("llama-bpe")));
    assert!(!TokenizerSpec::default_add_bos(Some("smollm")));
    assert!(!TokenizerSpec::default_add_bos(None));
}

#[test]
fn eog_ids_cover_eos_and_end_of_turn_texts() {
    let t = tok("smollm");
    assert_eq!(t.eog_ids(), [ENDOFTEXT, IM_END]);
    assert_eq!(t.eos_id(), Some(ENDOFTEXT));
    assert_eq!(t.bos_id(), Some(IM_START));
}

#[test]
fn tokenizer_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    let t = std::sync::Arc::new(tok("smollm"));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || t.encode("hello hello lll 12", false, false).unwrap())
        })
        .collect();
    let results: Vec<Vec<u32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn token_lookups() {
    let t = tok("smollm");
    let space = byte_id(b' ');
    assert_eq!(t.token_text(space), Some("Ġ"));
    assert_eq!(t.token_bytes(space), Some(&b" "[..]));
    assert_eq!(t.token_bytes(IM_END), Some(&b"<|im_end|>"[..]));
    assert_eq!(t.token_id("Ġ"), Some(space));
    assert_eq!(t.token_id("nope"), None);
    assert_eq!(t.token_text(u32::MAX), None);
    assert_eq!(t.vocab_size(), 4 + 256 + MERGES.len());
}

#[test]
fn unknown_pre_tokenizer_warns_and_still_works() {
    let t = tok("made-up");
    assert!(t.warnings().iter().any(|w| w.contains("made-up")));
    assert_eq!(t.encode("hello", false, false).unwrap(), [id(&t, "hello")]);
}

#[test]
fn bad_specs_are_model_load_errors() {
    let mut s = spec("smollm");
    s.model = "llama".into();
    let err = Tokenizer::from_spec(s).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelLoad);
    assert!(
        err.message.contains("unsupported tokenizer model"),
        "{}",
        err.message
    );

    let mut s = spec("smollm");
    s.eos_id = Some(100_000);
    assert_eq!(
        Tokenizer::from_spec(s).unwrap_err().code,
        ErrorCode::ModelLoad
    );

    let mut s = spec("smollm");
    s.merges.push("nospace".into());
    assert_eq!(
        Tokenizer::from_spec(s).unwrap_err().code,
        ErrorCode::ModelLoad
    );

    let mut s = spec("smollm");
    s.tokens.push("he".into());
    s.token_types.push(1);
    assert_eq!(
        Tokenizer::from_spec(s).unwrap_err().code,
        ErrorCode::ModelLoad
    );

    let mut s = spec("smollm");
    s.token_types.truncate(3);
    assert_eq!(
        Tokenizer::from_spec(s).unwrap_err().code,
        ErrorCode::ModelLoad
    );

    let mut s = spec("smollm");
    s.add_bos = true;
    s.bos_id = None;
    assert_eq!(
        Tokenizer::from_spec(s).unwrap_err().code,
        ErrorCode::ModelLoad
    );
}

#[test]
fn incremental_decoder_holds_back_a_split_character() {
    let t = tok("smollm");
    let mut d = IncrementalDecoder::new(false);
    let ids: Vec<u32> = "🙂".bytes().map(byte_id).collect();
    for (i, &tid) in ids[..3].iter().enumerate() {
        assert_eq!(d.push(&t, tid), "");
        assert_eq!(d.pending_bytes(), i + 1);
    }
    assert_eq!(d.push(&t, ids[3]), "🙂");
    assert_eq!(d.pending_bytes(), 0);
    assert_eq!(d.flush(), "");
}

#[test]
fn incremental_decoder_streams_mixed_text() {
    let t = tok("smollm");
    let text = "hello 🙂 world";
    let ids = t.encode(text, false, false).unwrap();
    let mut d = IncrementalDecoder::new(false);
    let mut streamed = String::new();
    let mut chunks = 0;
    for &tid in &ids {
        let s = d.push(&t, tid);
        chunks += usize::from(!s.is_empty());
        streamed.push_str(&s);
    }
    streamed.push_str(&d.flush());
    assert_eq!(streamed, text);
    // ASCII comes out as soon as its token arrives, not only at the end.
    assert!(chunks > 2, "{chunks}");
}

#[test]
fn incremental_decoder_flush_replaces_an_unfinished_character() {
    let t = tok("smollm");
    let mut d = IncrementalDecoder::new(false);
    let bytes = "🙂".as_bytes();
    assert_eq!(d.push(&t, byte_id(b'a')), "a");
    assert_eq!(d.push(&t, byte_id(bytes[0])), "");
    assert_eq!(d.push(&t, byte_id(bytes[1])), "");
    assert_eq!(d.pending_bytes(), 2);
    assert_eq!(d.flush(), "\u{FFFD}");
    assert_eq!(d.pending_bytes(), 0);
}

#[test]
fn incremental_decoder_does_not_stall_on_an_impossible_byte() {
    let t = tok("smollm");
    let mut d = IncrementalDecoder::new(false);
    // A lone continuation byte can never start a character.
    assert_eq!(d.push(&t, byte_id(0x80)), "\u{FFFD}");
    assert_eq!(d.push(&t, byte_id(b'x')), "x");
}

#[test]
fn incremental_decoder_skip_special() {
    let t = tok("smollm");
    let mut skip = IncrementalDecoder::new(true);
    let mut show = IncrementalDecoder::new(false);
    assert_eq!(skip.push(&t, IM_END), "");
    assert_eq!(show.push(&t, IM_END), "<|im_end|>");
    assert_eq!(skip.push(&t, TOOL), "<tool>");
    assert_eq!(skip.push(&t, u32::MAX), "");
}

// ---------------------------------------------------------------------------------------------
// Opt-in comparison with llama.cpp on a real model.
//
// Needs files produced at development time (nothing is committed): SMOLRT_TOKSPEC, the
// model's tokenizer metadata in the line format read below, and SMOLRT_TOKGOLDEN, tab-separated
// lines `<hex text> <parse_special 0|1> <ids> <hex decode, specials hidden> <hex decode, shown>`
// from llama.cpp, optionally with `<SMOLRT_TOKGOLDEN>.eog` listing its end-of-generation ids.
// Run with `cargo test --release -p smolrt-core --test tokenizer -- --ignored --nocapture`.

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8(bytes).expect("utf-8")
}

fn read_spec(path: &str) -> TokenizerSpec {
    let text = std::fs::read_to_string(path).expect("spec file");
    let mut lines = text.lines();
    let mut spec = TokenizerSpec::default();
    while let Some(line) = lines.next() {
        let (key, val) = line.split_once(' ').expect("key value");
        let count = || val.parse::<usize>().expect("count");
        match key {
            "model" => spec.model = unhex(val),
            "pre" => spec.pre = Some(unhex(val)),
            "bos" => spec.bos_id = val.parse().ok(),
            "eos" => spec.eos_id = val.parse().ok(),
            "eot" => spec.eot_id = val.parse().ok(),
            "unk" => spec.unk_id = val.parse().ok(),
            "pad" => spec.pad_id = val.parse().ok(),
            "add_bos" => spec.add_bos = val == "1",
            "tokens" => spec.tokens = (0..count()).map(|_| unhex(lines.next().unwrap())).collect(),
            "types" => {
                spec.token_types = (0..count())
                    .map(|_| lines.next().unwrap().parse().unwrap())
                    .collect()
            }
            "merges" => spec.merges = (0..count()).map(|_| unhex(lines.next().unwrap())).collect(),
            other => panic!("unknown key {other}"),
        }
    }
    spec
}

#[test]
#[ignore = "needs SMOLRT_TOKSPEC and SMOLRT_TOKGOLDEN files generated with llama.cpp"]
fn matches_llama_cpp_golden_ids() {
    let (Ok(spec_path), Ok(golden_path)) = (
        std::env::var("SMOLRT_TOKSPEC"),
        std::env::var("SMOLRT_TOKGOLDEN"),
    ) else {
        eprintln!("skipping: set SMOLRT_TOKSPEC and SMOLRT_TOKGOLDEN");
        return;
    };
    let spec = read_spec(&spec_path);
    let started = std::time::Instant::now();
    let t = Tokenizer::from_spec(spec).unwrap();
    let load = started.elapsed();
    // Timing of a cold (uncached) prompt of roughly 512 tokens, for information only.
    let prompt = "The quick brown fox, 1234 times; naïve café — 你好! ".repeat(24);
    let started = std::time::Instant::now();
    let n = t.encode(&prompt, false, true).unwrap().len();
    eprintln!(
        "load {load:?}; cold encode of {n} tokens {:?}",
        started.elapsed()
    );
    let golden = std::fs::read_to_string(&golden_path).unwrap();
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in golden.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "golden line {line:?}");
        let text = unhex(cols[0]);
        let parse_special = cols[1] == "1";
        let want: Vec<u32> = cols[2]
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let got = t.encode(&text, false, parse_special).unwrap();
        cases += 1;
        if got != want {
            failures.push(format!(
                "{text:?} special={parse_special}\n  want {want:?}\n  got  {got:?}"
            ));
        }
        for (skip, col) in [(true, cols[3]), (false, cols[4])] {
            let got = t.decode(&want, skip).unwrap();
            if got != unhex(col) {
                failures.push(format!(
                    "decode {want:?} skip={skip}: want {:?} got {got:?}",
                    unhex(col)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if let Ok(eog) = std::fs::read_to_string(format!("{golden_path}.eog")) {
        let want: Vec<u32> = eog.split_whitespace().map(|s| s.parse().unwrap()).collect();
        assert_eq!(t.eog_ids(), want);
    }
    eprintln!(
        "{cases} cases match; warnings: {:?}; eog: {:?}",
        t.warnings(),
        t.eog_ids()
    );
}
