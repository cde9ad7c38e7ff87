//! Measures decode and prefill throughput of the forward pass on one sequence.
//!
//! `cargo run --release -p smolrt-core --example forward_speed [model.gguf]`
//! (default: $SMOLRT_TEST_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf)
//! `FORWARD_SPEED_ONLY=decode` (or `prefill`) runs one half, for profiling it alone;
//! `FORWARD_SPEED_STEPS=n` sets the decode length (default 64); `FORWARD_SPEED_BATCH=n` decodes
//! n sequences together, one token each per forward (default 1); `FORWARD_SPEED_PROMPT=n` sets
//! the prefill length (default 200); `FORWARD_SPEED_KV=f32` (or `q8`) caches keys and values so
//! (default f16); `FORWARD_SPEED_WARM=1` writes the KV blocks the decode will use once before
//! timing it (a serving engine's steady state: no first-touch page faults);
//! `FORWARD_SPEED_CONTEXT=n` starts each decoding sequence from an n-token prompt.

mod common;

use std::time::Instant;

use smolrt_core::arch::{BatchItem, Logits, Model};
use smolrt_core::config::ModelConfig;
use smolrt_core::gguf::GgufFile;
use smolrt_core::kv::{KvBlockPool, KvType, SeqKv};

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in xs.iter().enumerate() {
        if v > xs[best] {
            best = i;
        }
    }
    best as u32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = common::model_path(std::env::args().nth(1));
    let file = GgufFile::open(&path)?;
    let cfg = ModelConfig::from_gguf(&file)?;
    let t0 = Instant::now();
    let model = Model::load(&file, &cfg)?;
    println!("loaded {path} in {:.2}s", t0.elapsed().as_secs_f64());
    drop(file);
    let kv_type = KvType::parse(&std::env::var("FORWARD_SPEED_KV").unwrap_or("f16".into()))?;
    let mut pool = KvBlockPool::with_type(&cfg, 16, 256 << 20, kv_type)?;

    let only = std::env::var("FORWARD_SPEED_ONLY").unwrap_or_default();
    let steps: usize = std::env::var("FORWARD_SPEED_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);

    // Prefill: one chunk of deterministic pseudo-random ids (200 unless FORWARD_SPEED_PROMPT
    // says otherwise), best of 3.
    let prompt_len: u32 = std::env::var("FORWARD_SPEED_PROMPT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let prompt: Vec<u32> = (0..prompt_len)
        .map(|i| (i * 7919 + 13) % 49000 + 100)
        .collect();
    let mut best_prefill = f64::MAX;
    for _ in 0..if only == "decode" { 0 } else { 3 } {
        let mut kv = SeqKv::default();
        pool.reserve(&mut kv, prompt.len())?;
        let t = Instant::now();
        let mut items = [BatchItem {
            tokens: &prompt,
            kv: &mut kv,
            all_logits: false,
        }];
        model.forward(&mut pool, &mut items)?;
        best_prefill = best_prefill.min(t.elapsed().as_secs_f64());
        pool.release(&mut kv);
    }
    println!(
        "prefill: {} tokens in {:.1} ms -> {:.0} tok/s",
        prompt.len(),
        best_prefill * 1e3,
        prompt.len() as f64 / best_prefill
    );

    if only == "prefill" {
        return Ok(());
    }
    // Decode: greedy steps after a short prompt, `batch` sequences per forward.
    let batch: usize = std::env::var("FORWARD_SPEED_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let short = [1u32, 9690, 198, 2683, 359, 253];
    // FORWARD_SPEED_CONTEXT=n: each sequence starts from an n-token prompt, so the decode runs
    // with a long context to attend to (default: a 6-token prompt)
    let context: usize = std::env::var("FORWARD_SPEED_CONTEXT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if std::env::var("FORWARD_SPEED_WARM").is_ok() {
        // Touch the KV blocks the decode will take (the pool hands the most recently freed out
        // first), so it measures a serving engine's steady state rather than the first-touch
        // page faults of fresh blocks (2 MB huge pages zeroed on the calling thread).
        let n = (batch * (context + steps + 24)).min(cfg.context_length);
        let warm: Vec<u32> = (0..n as u32)
            .map(|i| (i * 7919 + 13) % 49000 + 100)
            .collect();
        let mut kv = SeqKv::default();
        pool.reserve(&mut kv, n)?;
        let mut items = [BatchItem {
            tokens: &warm,
            kv: &mut kv,
            all_logits: false,
        }];
        model.forward(&mut pool, &mut items)?;
        pool.release(&mut kv);
    }
    let mut kvs: Vec<SeqKv> = (0..batch).map(|_| SeqKv::default()).collect();
    let mut next = Vec::with_capacity(batch);
    for (i, kv) in kvs.iter_mut().enumerate() {
        // a different last prompt token per sequence, so the batch does not decode in lockstep
        let prompt = if context > 0 {
            (0..context as u32)
                .map(|j| (j * 7919 + 13 + i as u32) % 49000 + 100)
                .collect()
        } else {
            [&short[..5], &[253 + i as u32]].concat()
        };
        pool.reserve(kv, prompt.len())?;
        let mut items = [BatchItem {
            tokens: &prompt,
            kv,
            all_logits: false,
        }];
        next.push(argmax(model.forward(&mut pool, &mut items)?.item(0)));
    }
    // one logits buffer for the whole decode, as the engine keeps one
    let mut logits = Logits::default();
    let t = Instant::now();
    for _ in 0..steps {
        for kv in kvs.iter_mut() {
            pool.reserve(kv, 1)?;
        }
        let toks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
        let mut items: Vec<BatchItem<'_>> = kvs
            .iter_mut()
            .zip(&toks)
            .map(|(kv, tok)| BatchItem {
                tokens: tok,
                kv,
                all_logits: false,
            })
            .collect();
        model.forward_into(&mut pool, &mut items, &mut logits)?;
        next = (0..logits.len()).map(|i| argmax(logits.item(i))).collect();
    }
    let dt = t.elapsed().as_secs_f64();
    let tokens = steps * batch;
    println!(
        "decode x{batch}: {tokens} tokens in {:.1} ms -> {:.1} tok/s ({:.2} ms/step)",
        dt * 1e3,
        tokens as f64 / dt,
        dt * 1e3 / steps as f64
    );
    Ok(())
}
