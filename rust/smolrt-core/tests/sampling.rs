//! Behaviour of the public sampling API: validation, the sampling pipeline, logprobs and the
//! stop-string matcher.

use smolrt_core::sampling::{
    Sampled, Sampler, SamplingParams, StopOutcome, StopParams, StopStringMatcher,
};
use smolrt_core::ErrorCode;

const VOCAB: usize = 100;

fn rejects(p: &SamplingParams, field: &str, range: &str) {
    let e = p
        .validate(VOCAB)
        .expect_err(&format!("{p:?} must be rejected"));
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(
        e.message.contains(field),
        "message {:?} must name {field}",
        e.message
    );
    assert!(
        e.message.contains(range),
        "message {:?} must name {range}",
        e.message
    );
}

fn with(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
    let mut p = SamplingParams::default();
    f(&mut p);
    p
}

#[test]
fn defaults_are_valid() {
    let p = SamplingParams::default();
    assert!(p.validate(VOCAB).is_ok());
    assert_eq!(p.temperature, 1.0);
    assert_eq!(p.penalty_last_n, 64);
    assert!(StopParams::default().validate(VOCAB).is_ok());
}

#[test]
fn validate_rejects_out_of_range_sampling_params() {
    let e = with(|p| p.top_p = 7.0).validate(VOCAB).unwrap_err();
    assert_eq!(e.message, "top_p must be in (0, 1], got 7");
    rejects(&with(|p| p.top_p = 0.0), "top_p", "(0, 1]");
    rejects(&with(|p| p.top_p = f32::NAN), "top_p", "(0, 1]");
    rejects(&with(|p| p.temperature = -1.0), "temperature", "[0, inf)");
    rejects(
        &with(|p| p.temperature = f32::NAN),
        "temperature",
        "[0, inf)",
    );
    rejects(
        &with(|p| p.temperature = f32::INFINITY),
        "temperature",
        "[0, inf)",
    );
    rejects(&with(|p| p.min_p = 1.5), "min_p", "[0, 1]");
    rejects(&with(|p| p.min_p = f32::NAN), "min_p", "[0, 1]");
    rejects(
        &with(|p| p.repetition_penalty = 0.0),
        "repetition_penalty",
        "(0, 10]",
    );
    rejects(
        &with(|p| p.repetition_penalty = 11.0),
        "repetition_penalty",
        "(0, 10]",
    );
    rejects(
        &with(|p| p.repetition_penalty = f32::NAN),
        "repetition_penalty",
        "(0, 10]",
    );
    rejects(
        &with(|p| p.presence_penalty = 2.5),
        "presence_penalty",
        "[-2, 2]",
    );
    rejects(
        &with(|p| p.frequency_penalty = -2.5),
        "frequency_penalty",
        "[-2, 2]",
    );
    rejects(
        &with(|p| p.frequency_penalty = f32::NEG_INFINITY),
        "frequency_penalty",
        "[-2, 2]",
    );
    rejects(&with(|p| p.top_logprobs = 21), "top_logprobs", "[0, 20]");
    rejects(
        &with(|p| p.logit_bias = vec![(VOCAB as u32, 1.0)]),
        "logit_bias",
        "[0, 100)",
    );
    rejects(
        &with(|p| p.logit_bias = vec![(3, f32::NAN)]),
        "logit_bias",
        "-inf",
    );
    rejects(
        &with(|p| p.logit_bias = vec![(3, f32::INFINITY)]),
        "logit_bias",
        "-inf",
    );
}

#[test]
fn validate_accepts_edges() {
    for p in [
        with(|p| p.top_k = 1_000_000), // clamps to the vocab
        with(|p| p.top_p = 1.0),
        with(|p| p.temperature = 0.0),
        with(|p| p.min_p = 1.0),
        with(|p| p.repetition_penalty = 10.0),
        with(|p| p.presence_penalty = -2.0),
        with(|p| p.top_logprobs = 20),
        with(|p| p.logit_bias = vec![(99, f32::NEG_INFINITY), (0, -100.0)]),
    ] {
        assert!(p.validate(VOCAB).is_ok(), "{p:?} must be accepted");
    }
}

#[test]
fn validate_rejects_bad_stop_params() {
    let bad = |f: fn(&mut StopParams), field: &str| {
        let mut s = StopParams::default();
        f(&mut s);
        let e = s.validate(VOCAB).expect_err(field);
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(
            e.message.contains(field),
            "{:?} must name {field}",
            e.message
        );
    };
    bad(|s| s.max_tokens = 0, "max_tokens");
    bad(
        |s| s.stop_strings = vec!["ok".into(), String::new()],
        "stop_strings[1]",
    );
    bad(
        |s| s.stop_strings = vec!["x".repeat(257)],
        "stop_strings[0]",
    );
    bad(|s| s.stop_strings = vec!["x".into(); 17], "stop_strings");
    bad(|s| s.stop_token_ids = vec![VOCAB as u32], "stop_token_ids");
    let ok = StopParams {
        max_tokens: 1,
        stop_token_ids: vec![99],
        stop_strings: vec!["x".repeat(256); 16],
        ignore_eos: true,
    };
    assert!(ok.validate(VOCAB).is_ok());
}

fn sampler(f: impl FnOnce(&mut SamplingParams)) -> Sampler {
    Sampler::new(with(|p| {
        p.seed = Some(42);
        f(p)
    }))
}

/// Deterministic pseudo-random logits (a tiny LCG, so tests do not depend on rand's streams).
fn logits(n: usize, salt: u64) -> Vec<f32> {
    let mut x = salt
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

fn draw_counts(s: &mut Sampler, base: &[f32], n: usize) -> Vec<usize> {
    let mut counts = vec![0; base.len()];
    for _ in 0..n {
        counts[s.sample(&mut base.to_vec(), &[]).token as usize] += 1;
    }
    counts
}

/// Logits whose softmax is exactly `probs`.
fn logits_for(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|p| p.ln()).collect()
}

#[test]
fn greedy_picks_argmax_with_ties_to_lowest_id() {
    let mut s = sampler(|p| p.temperature = 0.0);
    assert_eq!(s.sample(&mut [0.1, 2.0, -1.0, 1.9], &[]).token, 1);
    assert_eq!(s.sample(&mut [0.1, 2.0, f32::NAN, 2.0], &[]).token, 1);
    let l = logits(VOCAB, 7);
    let best = (0..VOCAB)
        .max_by(|&a, &b| l[a].total_cmp(&l[b]).then(b.cmp(&a)))
        .unwrap();
    assert_eq!(s.sample(&mut l.clone(), &[]).token as usize, best);
}

#[test]
fn same_seed_same_draws_and_different_seeds_differ() {
    let run = |seed: u64| {
        let mut s = Sampler::new(with(|p| p.seed = Some(seed)));
        (0..200)
            .map(|i| s.sample(&mut logits(VOCAB, i), &[]).token)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn unseeded_sampler_reports_a_reproducible_seed() {
    let mut a = Sampler::new(SamplingParams::default());
    let mut b = Sampler::new(with(|p| p.seed = Some(a.seed())));
    for i in 0..50 {
        let l = logits(VOCAB, i);
        assert_eq!(a.sample(&mut l.clone(), &[]), b.sample(&mut l.clone(), &[]));
    }
    // Two unseeded samplers draw different seeds (fails with probability 2^-64).
    assert_ne!(Sampler::new(SamplingParams::default()).seed(), a.seed());
}

#[test]
fn top_k_one_equals_greedy_at_any_temperature() {
    let mut greedy = sampler(|p| p.temperature = 0.0);
    for t in [0.01, 0.7, 1.0, 5.0, 1000.0] {
        let mut s = sampler(|p| {
            p.temperature = t;
            p.top_k = 1
        });
        for i in 0..30 {
            let l = logits(VOCAB, i);
            assert_eq!(
                s.sample(&mut l.clone(), &[]).token,
                greedy.sample(&mut l.clone(), &[]).token
            );
        }
    }
}

#[test]
fn neg_inf_logit_bias_bans_a_token() {
    // Greedy: the banned argmax gives way to the runner-up.
    let mut g = sampler(|p| {
        p.temperature = 0.0;
        p.logit_bias = vec![(1, f32::NEG_INFINITY)]
    });
    assert_eq!(g.sample(&mut [0.0, 5.0, 4.0], &[]).token, 2);
    // Sampling: a ban on the overwhelming favourite holds over many draws.
    let mut s = sampler(|p| p.logit_bias = vec![(3, f32::NEG_INFINITY), (0, 1.0)]);
    let base = vec![0.0, 0.0, 0.0, 20.0, 0.0];
    let counts = draw_counts(&mut s, &base, 2000);
    assert_eq!(counts[3], 0);
    // The +1 bias on token 0 is visible: e / (e + 3) ≈ 0.475 of the draws.
    let share = counts[0] as f32 / 2000.0;
    assert!((share - 0.475).abs() < 0.05, "token 0 share {share}");
}

fn all_logprobs(s: &mut Sampler, l: &[f32], history: &[u32]) -> Vec<f32> {
    let out = s.sample(&mut l.to_vec(), history);
    assert_eq!(
        out.top_logprobs.len(),
        l.len(),
        "test vocab must be fully listed"
    );
    let mut lp = vec![0.0; l.len()];
    for (id, v) in out.top_logprobs {
        lp[id as usize] = v;
    }
    lp
}

fn log_softmax(l: &[f64]) -> Vec<f64> {
    let lse = l.iter().map(|x| x.exp()).sum::<f64>().ln();
    l.iter().map(|x| x - lse).collect()
}

#[test]
fn repetition_penalty_lowers_repeated_tokens() {
    let base = [2.0, 1.0, -1.0, 0.5];
    let history = [0, 2];
    let make = |r: f32| {
        sampler(|p| {
            p.temperature = 0.0;
            p.repetition_penalty = r;
            p.top_logprobs = 4
        })
    };
    let plain = all_logprobs(&mut make(1.0), &base, &history);
    let penal = all_logprobs(&mut make(1.5), &base, &history);
    // Positive logit divided, negative multiplied: both repeated tokens lose probability.
    assert!(penal[0] < plain[0] && penal[2] < plain[2]);
    assert!(penal[1] > plain[1] && penal[3] > plain[3]);
    let expect = log_softmax(&[2.0 / 1.5, 1.0, -1.5, 0.5]);
    for (got, want) in penal.iter().zip(&expect) {
        assert!(
            (f64::from(*got) - want).abs() < 1e-5,
            "{penal:?} vs {expect:?}"
        );
    }
}

#[test]
fn presence_and_frequency_penalties_are_exact() {
    let mut s = sampler(|p| {
        p.temperature = 0.0;
        p.presence_penalty = 0.5;
        p.frequency_penalty = 0.25;
        p.top_logprobs = 4
    });
    // Token 1 seen twice, tokens 0 and 3 once, token 2 never.
    let lp = all_logprobs(&mut s, &[1.0, 2.0, 3.0, 4.0], &[0, 1, 1, 3]);
    let hand = log_softmax(&[1.0 - 0.75, 2.0 - 2.0 * 0.25 - 0.5, 3.0, 4.0 - 0.25 - 0.5]);
    for (got, want) in lp.iter().zip(&hand) {
        assert!((f64::from(*got) - want).abs() < 1e-5, "{lp:?} vs {hand:?}");
    }
    // With penalty_last_n = 3, token 0 (4th from the end) is outside the window.
    let mut w = sampler(|p| {
        p.temperature = 0.0;
        p.presence_penalty = 1.0;
        p.penalty_last_n = 3;
        p.top_logprobs = 4
    });
    let lp = all_logprobs(&mut w, &[0.0; 4], &[0, 1, 1, 3]);
    let hand = log_softmax(&[0.0, -1.0, 0.0, -1.0]);
    for (got, want) in lp.iter().zip(&hand) {
        assert!((f64::from(*got) - want).abs() < 1e-5, "{lp:?} vs {hand:?}");
    }
}

#[test]
fn min_p_removes_unlikely_tokens() {
    // Threshold 0.5 * 0.15 = 0.075: tokens 3 and 4 go, 0..=2 stay in proportion 5:3:1.
    let base = logits_for(&[0.5, 0.3, 0.1, 0.06, 0.04]);
    let mut s = sampler(|p| p.min_p = 0.15);
    let c = draw_counts(&mut s, &base, 2000);
    assert_eq!((c[3], c[4]), (0, 0), "{c:?}");
    let share = |i: usize| c[i] as f32 / 2000.0;
    assert!((share(0) - 0.5 / 0.9).abs() < 0.05, "{c:?}");
    assert!((share(2) - 0.1 / 0.9).abs() < 0.03, "{c:?}");
}

#[test]
fn top_p_keeps_smallest_set_reaching_p() {
    let base = logits_for(&[0.1, 0.4, 0.2, 0.3]);
    // 0.4 < 0.65 <= 0.4 + 0.3: exactly tokens 1 and 3 remain, in proportion 4:3.
    let mut s = sampler(|p| p.top_p = 0.65);
    let c = draw_counts(&mut s, &base, 2000);
    assert_eq!((c[0], c[2]), (0, 0), "{c:?}");
    assert!((c[1] as f32 / 2000.0 - 4.0 / 7.0).abs() < 0.05, "{c:?}");
    // A p just past one token's mass keeps only it.
    let mut one = sampler(|p| p.top_p = 0.3);
    assert_eq!(draw_counts(&mut one, &base, 200)[1], 200);
}

#[test]
fn draws_across_a_large_vocab_land_on_the_right_ids() {
    // Two live tokens far apart in a 5000-token vocab, the rest negligible (e^-40).
    let mut base = vec![-40.0f32; 5000];
    base[130] = 3f32.ln();
    base[4321] = 0.0;
    let c = draw_counts(&mut sampler(|_| {}), &base, 2000);
    assert_eq!(c[130] + c[4321], 2000, "stray draws");
    assert!((c[130] as f32 / 2000.0 - 0.75).abs() < 0.04, "{}", c[130]);
    // The same through the top-k path (k above the small-k scan) and the top-p path.
    for mut s in [sampler(|p| p.top_k = 100), sampler(|p| p.top_p = 0.99)] {
        let c = draw_counts(&mut s, &base, 2000);
        assert_eq!(c[130] + c[4321], 2000, "stray draws");
        assert!((c[130] as f32 / 2000.0 - 0.75).abs() < 0.04, "{}", c[130]);
    }
}

#[test]
fn top_k_limits_the_draw_to_the_best_k() {
    let base = logits_for(&[0.1, 0.4, 0.2, 0.3]);
    let c = draw_counts(&mut sampler(|p| p.top_k = 2), &base, 2000);
    assert_eq!((c[0], c[2]), (0, 0), "{c:?}");
    assert!((c[1] as f32 / 2000.0 - 4.0 / 7.0).abs() < 0.05, "{c:?}");
}

#[test]
fn plain_sampling_follows_the_tempered_distribution() {
    let base = logits_for(&[0.5, 0.25, 0.25]);
    let mut s = sampler(|_| {});
    let c = draw_counts(&mut s, &base, 4000);
    assert!((c[0] as f32 / 4000.0 - 0.5).abs() < 0.04, "{c:?}");
    // T = 0.5 squares the probabilities: 0.25 : 0.0625 : 0.0625 -> 2/3, 1/6, 1/6.
    let mut hot = sampler(|p| p.temperature = 0.5);
    let c = draw_counts(&mut hot, &base, 4000);
    assert!((c[0] as f32 / 4000.0 - 2.0 / 3.0).abs() < 0.04, "{c:?}");
}

#[test]
fn logprobs_are_the_untempered_log_softmax() {
    let base = [1.0, 3.0, 2.0, 3.0, -1.0];
    let hand = log_softmax(&[1.0, 3.0, 2.0, 3.0, -1.0]);
    // Temperature and truncation must not change what is reported.
    let mut s = sampler(|p| {
        p.temperature = 2.5;
        p.top_k = 2;
        p.logprobs = true;
        p.top_logprobs = 3
    });
    for _ in 0..20 {
        let out: Sampled = s.sample(&mut base.to_vec(), &[]);
        let lp = out.logprob.expect("logprob requested");
        assert!((f64::from(lp) - hand[out.token as usize]).abs() < 1e-6);
        // Sorted descending, ties by id.
        let ids: Vec<u32> = out.top_logprobs.iter().map(|e| e.0).collect();
        assert_eq!(ids, vec![1, 3, 2]);
        for &(id, v) in &out.top_logprobs {
            assert!((f64::from(v) - hand[id as usize]).abs() < 1e-6);
        }
        let mass: f32 = out.top_logprobs.iter().map(|e| e.1.exp()).sum();
        assert!(mass <= 1.0 + 1e-6 && mass > 0.9, "{mass}");
    }
}

#[test]
fn logprobs_over_a_real_sized_vocab() {
    let base = logits(49_152, 3);
    let mut s = sampler(|p| {
        p.logprobs = true;
        p.top_logprobs = 20
    });
    let out = s.sample(&mut base.clone(), &[]);
    let lse = base.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
    let want = f64::from(base[out.token as usize]) - lse;
    assert!((f64::from(out.logprob.unwrap()) - want).abs() < 1e-4);
    assert_eq!(out.top_logprobs.len(), 20);
    assert!(out.top_logprobs.windows(2).all(|w| w[0].1 >= w[1].1));
    let mass: f32 = out.top_logprobs.iter().map(|e| e.1.exp()).sum();
    assert!(mass <= 1.0);
    let max = base.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(base[out.top_logprobs[0].0 as usize], max);
}

#[test]
fn no_logprobs_unless_asked() {
    let out = sampler(|_| {}).sample(&mut logits(VOCAB, 1), &[]);
    assert_eq!((out.logprob, out.top_logprobs.len()), (None, 0));
}

#[test]
fn hostile_logits_never_panic() {
    for t in [0.0, 1.0] {
        // All NaN: nothing to choose from, token 0.
        let mut s = sampler(|p| {
            p.temperature = t;
            p.logprobs = true;
            p.top_logprobs = 5
        });
        let out = s.sample(&mut [f32::NAN; 10], &[]);
        assert_eq!(out.token, 0);
        assert_eq!(out.logprob, Some(f32::NEG_INFINITY));
        assert!(out.top_logprobs.is_empty());
        // NaN never wins, -inf never drawn.
        let out = s.sample(&mut [f32::NAN, f32::NEG_INFINITY, 0.5, f32::NAN], &[]);
        assert_eq!(out.token, 2);
        assert_eq!(out.logprob, Some(0.0));
        // +inf dominates.
        let out = s.sample(&mut [0.0, f32::INFINITY, 1e30], &[]);
        assert_eq!((out.token, out.logprob), (1, Some(0.0)));
        // Empty logits and out-of-range history ids.
        assert_eq!(s.sample(&mut [], &[5, 7]).token, 0);
        // Everything banned: fall back to the raw argmax.
        let mut b = sampler(|p| {
            p.temperature = t;
            p.logit_bias = vec![(0, f32::NEG_INFINITY), (1, f32::NEG_INFINITY)];
            p.repetition_penalty = 1.3;
        });
        assert_eq!(b.sample(&mut [1.0, 2.0], &[0, 1, 999]).token, 1);
    }
}

#[test]
fn tiny_temperature_behaves_like_greedy() {
    let mut s = sampler(|p| p.temperature = 1e-30);
    let mut g = sampler(|p| p.temperature = 0.0);
    for i in 0..20 {
        let l = logits(VOCAB, i);
        assert_eq!(
            s.sample(&mut l.clone(), &[]).token,
            g.sample(&mut l.clone(), &[]).token
        );
    }
}

fn out(emit: &str, matched: Option<&str>) -> StopOutcome {
    StopOutcome {
        emit: emit.into(),
        stopped: matched.is_some(),
        matched: matched.map(Into::into),
    }
}

fn matcher(stops: &[&str]) -> StopStringMatcher {
    StopStringMatcher::new(stops.iter().map(|s| s.to_string()).collect())
}

#[test]
fn stop_within_one_chunk() {
    let mut m = matcher(&["STOP"]);
    assert_eq!(m.push("Hello STOP world"), out("Hello ", Some("STOP")));
    // Nothing after a stop is ever emitted.
    assert_eq!(m.push("more"), out("", Some("STOP")));
    assert_eq!(m.flush(), "");
}

#[test]
fn stop_split_across_three_chunks() {
    let mut m = matcher(&["STOP"]);
    assert_eq!(m.push("Hello S"), out("Hello ", None));
    assert_eq!(m.push("TO"), out("", None));
    assert_eq!(m.push("P! tail"), out("", Some("STOP")));
}

#[test]
fn false_partial_match_is_released() {
    let mut m = matcher(&["STOP"]);
    assert_eq!(m.push("a ST"), out("a ", None));
    assert_eq!(m.push("ART"), out("START", None));
    // A held tail that restarts a prefix keeps only the new candidate.
    assert_eq!(m.push(" SS"), out(" S", None));
    assert_eq!(m.push("T"), out("", None));
    assert_eq!(m.flush(), "ST");
}

#[test]
fn overlapping_stop_strings() {
    // "ab" completes before "abc" could: it wins whether or not the "c" is in the same chunk.
    let mut m = matcher(&["abc", "ab"]);
    assert_eq!(m.push("xa"), out("x", None));
    assert_eq!(m.push("bc"), out("", Some("ab")));
    assert_eq!(matcher(&["abc", "ab"]).push("xabc"), out("x", Some("ab")));
    // Same end: the one starting earlier wins.
    assert_eq!(matcher(&["bc", "abc"]).push("xabcd"), out("x", Some("abc")));
    // "bc" ends inside "abcd", before "abcd" completes.
    assert_eq!(matcher(&["abcd", "bc"]).push("abcd"), out("a", Some("bc")));
    // Self-overlapping prefix: "aab" inside "aaab".
    let mut m = matcher(&["aab"]);
    let emitted: String = ["a", "a", "a"].iter().map(|c| m.push(c).emit).collect();
    assert_eq!(emitted, "a");
    assert_eq!(m.push("b"), out("", Some("aab")));
}

#[test]
fn result_does_not_depend_on_chunking() {
    // "ser: h" also occurs, but completes after "\n\nUser:" does.
    let stops = ["\n\nUser:", "ser: h", "Usa"];
    let text = "Sure.\n\nUs\n\nUse\n\nUser: hi";
    let whole = matcher(&stops).push(text);
    for step in 1..=5 {
        let mut m = matcher(&stops);
        let mut emitted = String::new();
        let mut last = None;
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(step) {
            let o = m.push(&chunk.iter().collect::<String>());
            emitted.push_str(&o.emit);
            if o.stopped {
                last = o.matched;
                break;
            }
        }
        assert_eq!(
            (emitted.as_str(), last.as_deref()),
            (whole.emit.as_str(), Some("\n\nUser:"))
        );
    }
    assert_eq!(whole.emit, "Sure.\n\nUs\n\nUse");
}

#[test]
fn multibyte_text_is_never_split_inside_a_char() {
    let mut m = matcher(&["日本"]);
    assert_eq!(m.push("こんにちは日"), out("こんにちは", None));
    assert_eq!(m.push("本語"), out("", Some("日本")));
    // "ä" and "é" share their first UTF-8 byte; "é" must still be released whole at once.
    let mut m = matcher(&["ä!"]);
    assert_eq!(m.push("café"), out("café", None));
    assert_eq!(m.push("ä"), out("", None));
    assert_eq!(m.push("é"), out("äé", None));
    assert_eq!(m.flush(), "");
}

#[test]
fn flush_releases_held_text() {
    let mut m = matcher(&["</s>"]);
    assert_eq!(m.push("end </"), out("end ", None));
    assert!(!m.is_stopped());
    assert_eq!(m.flush(), "</");
    // No stop strings at all: everything passes straight through.
    let mut none = matcher(&[]);
    assert_eq!(none.push("abc"), out("abc", None));
    assert_eq!(none.flush(), "");
}
