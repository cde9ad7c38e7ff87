//! Measures the sampler: microseconds per draw for common settings, on the logits of a real
//! decode (a story prompt, 200 tokens drawn at temperature 0.8), so the distributions are those
//! a serving engine sees, peaked and flat alike.
//!
//! `cargo run --release -p smolrt-core --example sample_speed [model.gguf]`
//! (default: $SMOLRT_TEST_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf). Each setting
//! runs over all 200 positions' logits five times; the best pass is reported.

mod common;

use std::time::Instant;

use smolrt_core::arch::{BatchItem, Model};
use smolrt_core::config::ModelConfig;
use smolrt_core::gguf::GgufFile;
use smolrt_core::kv::{KvBlockPool, SeqKv};
use smolrt_core::sampling::{Sampler, SamplingParams};

/// "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n<|im_start|>
/// assistant\n" in SmolLM2's vocabulary.
const PROMPT: [u32; 18] = [
    1, 4093, 198, 19161, 253, 1890, 1977, 563, 253, 33059, 40061, 30, 2, 198, 1, 520, 9531, 198,
];
const POSITIONS: usize = 200;
const PASSES: usize = 5;

fn sampler(temperature: f32, top_p: f32, top_k: u32, seed: u64) -> Sampler {
    Sampler::new(SamplingParams {
        temperature,
        top_p,
        top_k,
        seed: Some(seed),
        ..SamplingParams::default()
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = common::model_path(std::env::args().nth(1));
    let file = GgufFile::open(&path)?;
    let cfg = ModelConfig::from_gguf(&file)?;
    let model = Model::load(&file, &cfg)?;
    let mut pool = KvBlockPool::new(&cfg, 16, 64 << 20)?;

    // The logits of every position of one decode, with the history each was drawn after.
    let mut kv = SeqKv::default();
    let mut driver = sampler(0.8, 1.0, 0, 7);
    let mut history = PROMPT.to_vec();
    let mut feed = PROMPT.to_vec();
    let mut positions = Vec::with_capacity(POSITIONS);
    for _ in 0..POSITIONS {
        pool.reserve(&mut kv, feed.len())?;
        let mut items = [BatchItem {
            tokens: &feed,
            kv: &mut kv,
            all_logits: false,
        }];
        let logits = model.forward(&mut pool, &mut items)?.to_item_vec(0);
        let next = driver.sample(&mut logits.clone(), &history).token;
        positions.push((logits, history.clone()));
        history.push(next);
        feed = vec![next];
    }

    println!(
        "vocab {}, {POSITIONS} positions, best of {PASSES} passes",
        cfg.vocab_size
    );
    let settings = [
        (0.0, 1.0, 0),
        (0.7, 1.0, 0),
        (1.0, 1.0, 0),
        (0.7, 0.9, 0),
        (0.8, 0.95, 0),
        (1.0, 0.95, 0),
        (0.8, 0.95, 40),
    ];
    let mut scratch = Vec::new();
    for (temperature, top_p, top_k) in settings {
        let mut best = f64::MAX;
        for _ in 0..PASSES {
            let mut s = sampler(temperature, top_p, top_k, 1);
            let mut spent = 0.0;
            for (logits, history) in &positions {
                // the sampler applies penalties in place: a fresh copy each time, not timed
                scratch.clear();
                scratch.extend_from_slice(logits);
                let t = Instant::now();
                std::hint::black_box(s.sample(&mut scratch, history));
                spent += t.elapsed().as_secs_f64();
            }
            best = best.min(spent / POSITIONS as f64);
        }
        println!(
            "temperature {temperature:<4} top_p {top_p:<5} top_k {top_k:<3} {:>7.1} us per draw",
            best * 1e6
        );
    }
    Ok(())
}
