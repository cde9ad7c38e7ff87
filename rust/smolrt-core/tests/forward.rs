//! Forward pass and KV pool behaviour, on the real default model where it is present.

use std::path::PathBuf;
use std::sync::OnceLock;

use smolrt_core::arch::{BatchItem, Model};
use smolrt_core::config::{Architecture, ModelConfig};
use smolrt_core::gguf::GgufFile;
use smolrt_core::kv::{KvBlockPool, KvType, SeqKv};
use smolrt_core::ErrorCode;

/// "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging
/// Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n
/// <|im_start|>assistant\n" in the SmolLM2 vocabulary.
const CHAT_PROMPT: [u32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
    198,
];

fn model_path() -> PathBuf {
    match std::env::var_os("SMOLRT_TEST_MODEL") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

/// The default model, loaded once for all tests; `None` (with a message) when the file is absent.
fn model() -> Option<&'static Model> {
    static MODEL: OnceLock<Option<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path();
            if !path.exists() {
                eprintln!("skipping: model file {} not found", path.display());
                return None;
            }
            let file = GgufFile::open(&path).expect("open model");
            let cfg = ModelConfig::from_gguf(&file).expect("model config");
            Some(Model::load(&file, &cfg).expect("load model"))
        })
        .as_ref()
}

/// A pool of the engine's default cache type (f16).
fn pool_for(model: &Model) -> KvBlockPool {
    pool_of(model, KvType::default())
}

fn pool_of(model: &Model, kv_type: KvType) -> KvBlockPool {
    KvBlockPool::with_type(model.config(), 16, 64 << 20, kv_type).expect("pool")
}

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in xs.iter().enumerate() {
        if v > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Runs one forward of `tokens` on `kv` (reserving room first).
fn step(
    model: &Model,
    pool: &mut KvBlockPool,
    kv: &mut SeqKv,
    tokens: &[u32],
    all: bool,
) -> Vec<f32> {
    pool.reserve(kv, tokens.len()).expect("reserve");
    let mut items = [BatchItem {
        tokens,
        kv,
        all_logits: all,
    }];
    model
        .forward(pool, &mut items)
        .expect("forward")
        .to_item_vec(0)
}

/// Largest absolute difference; also asserts the same argmax in every `vocab`-wide row.
fn compare_rows(a: &[f32], b: &[f32], vocab: usize, what: &str) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: logit counts differ");
    let mut max_diff = 0f32;
    for (i, (ra, rb)) in a.chunks_exact(vocab).zip(b.chunks_exact(vocab)).enumerate() {
        assert_eq!(argmax(ra), argmax(rb), "{what}: argmax differs at row {i}");
        for (x, y) in ra.iter().zip(rb) {
            assert!(x.is_finite() && y.is_finite(), "{what}: non-finite logit");
            max_diff = max_diff.max((x - y).abs());
        }
    }
    max_diff
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    check::<KvBlockPool>();
}

#[test]
fn batching_and_chunking_do_not_change_logits() {
    let Some(model) = model() else { return };
    for kv_type in [KvType::F16, KvType::F32, KvType::Q8] {
        batching_and_chunking_do_not_change_logits_with(model, kv_type);
    }
}

fn batching_and_chunking_do_not_change_logits_with(model: &Model, kv_type: KvType) {
    let vocab = model.config().vocab_size;
    let mut pool = pool_of(model, kv_type);
    let a: &[u32] = &CHAT_PROMPT;
    let b: Vec<u32> = (0..11u32).map(|i| 1000 + i * 37).collect();
    let c: Vec<u32> = (0..23u32).map(|i| 5000 + i * 101).collect();

    // A alone, whole prompt.
    let mut kv_alone = SeqKv::default();
    let alone = step(model, &mut pool, &mut kv_alone, a, true);
    assert_eq!(alone.len(), a.len() * vocab);
    assert_eq!(kv_alone.len(), a.len());

    // A batched with two other sequences of different lengths, A in the middle.
    let (mut kv_a, mut kv_b, mut kv_c) = (SeqKv::default(), SeqKv::default(), SeqKv::default());
    pool.reserve(&mut kv_a, a.len()).unwrap();
    pool.reserve(&mut kv_b, b.len()).unwrap();
    pool.reserve(&mut kv_c, c.len()).unwrap();
    let mut items = [
        BatchItem {
            tokens: &b,
            kv: &mut kv_b,
            all_logits: false,
        },
        BatchItem {
            tokens: a,
            kv: &mut kv_a,
            all_logits: true,
        },
        BatchItem {
            tokens: &c,
            kv: &mut kv_c,
            all_logits: true,
        },
    ];
    let batched = model.forward(&mut pool, &mut items).unwrap();
    assert_eq!(batched.item(0).len(), vocab);
    assert_eq!(batched.item(2).len(), c.len() * vocab);
    assert_eq!(
        (kv_a.len(), kv_b.len(), kv_c.len()),
        (a.len(), b.len(), c.len())
    );
    let d_batch = compare_rows(&alone, batched.item(1), vocab, "batched prefill");

    // A's prompt as three chunks over three forwards.
    let mut kv_chunked = SeqKv::default();
    let mut chunked = Vec::new();
    for chunk in [&a[..10], &a[10..25], &a[25..]] {
        chunked.extend(step(model, &mut pool, &mut kv_chunked, chunk, true));
    }
    let d_chunk = compare_rows(&alone, &chunked, vocab, "chunked prefill");

    // One decode step: A alone vs A next to B and C decoding too.
    let next = argmax(&alone[(a.len() - 1) * vocab..]);
    let dec_alone = step(model, &mut pool, &mut kv_alone, &[next], false);
    for kv in [&mut kv_a, &mut kv_b, &mut kv_c] {
        pool.reserve(kv, 1).unwrap();
    }
    let mut items = [
        BatchItem {
            tokens: &[7],
            kv: &mut kv_c,
            all_logits: false,
        },
        BatchItem {
            tokens: &[9],
            kv: &mut kv_b,
            all_logits: false,
        },
        BatchItem {
            tokens: &[next],
            kv: &mut kv_a,
            all_logits: false,
        },
    ];
    let dec_batched = model.forward(&mut pool, &mut items).unwrap();
    let d_decode = compare_rows(&dec_alone, dec_batched.item(2), vocab, "batched decode");

    eprintln!(
        "{kv_type:?} max |diff|: batched prefill {d_batch}, chunked prefill {d_chunk}, batched \
         decode {d_decode}"
    );
    for (d, what) in [
        (d_batch, "batched"),
        (d_chunk, "chunked"),
        (d_decode, "decode"),
    ] {
        assert!(d <= 1e-4, "{kv_type:?}: {what} logits differ by {d}");
    }
    // Every matmul output is one dot product per (row, column) and attention is per (row, head)
    // over the same cached values in the same order, so nothing depends on the batch: exact.
    assert_eq!(
        d_batch, 0.0,
        "{kv_type:?}: batched prefill is expected to be bit-identical"
    );
    assert_eq!(
        d_chunk, 0.0,
        "{kv_type:?}: chunked prefill is expected to be bit-identical"
    );
    assert_eq!(
        d_decode, 0.0,
        "{kv_type:?}: batched decode is expected to be bit-identical"
    );
}

/// Greedy ids after `prefix`, `n` steps, with a cache of `kv_type`.
fn greedy(model: &Model, kv_type: KvType, prefix: &[u32], n: usize) -> (Vec<u32>, Vec<f32>) {
    let mut pool = pool_of(model, kv_type);
    let mut kv = SeqKv::default();
    let first = step(model, &mut pool, &mut kv, prefix, false);
    let mut logits = first.clone();
    let mut out = Vec::new();
    for _ in 0..n {
        let next = argmax(&logits);
        out.push(next);
        logits = step(model, &mut pool, &mut kv, &[next], false);
    }
    (out, first)
}

#[test]
fn greedy_answer_matches_llama_cpp_and_names_paris() {
    let Some(model) = model() else { return };
    for kv_type in [KvType::F16, KvType::F32, KvType::Q8] {
        greedy_answer_with(model, kv_type);
    }
}

fn greedy_answer_with(model: &Model, kv_type: KvType) {
    // At the start of the answer this Q4_1 file has a near-tie between "L" (60), "The" (504)
    // and "La" (15319), all within 0.35 logits: llama.cpp (llama-cpp-python 0.3.36, same file)
    // picks "L" by 0.09, we by 0.25, an exact f64 evaluation of the dequantized weights picks
    // "The" by a hair. So "The" must be a close runner-up.
    let (ids, first) = greedy(model, kv_type, &CHAT_PROMPT, 8);
    let best = first[argmax(&first) as usize];
    let rank_the = first.iter().filter(|&&v| v > first[504]).count();
    assert!(
        rank_the < 3 && best - first[504] < 0.5,
        "{kv_type:?}: 'The' is not a close runner-up"
    );
    // "L'Étoile, la": llama.cpp's greedy output for this prompt and file, id for id. Its next
    // token, "Cit" (12693), is a near-tie with "Ét" (2828): our kernels accumulate each block's
    // min term in a different order than llama.cpp's, and pick 2828 (by 0.05 logits with an f32
    // cache, 0.11 with f16). So the eighth step only has to keep llama.cpp's choice within 0.15
    // logits of the best.
    assert_eq!(
        ids[..7],
        [60, 23, 39614, 1141, 552, 28, 2618],
        "{kv_type:?}"
    );
    let mut seven = CHAT_PROMPT.to_vec();
    seven.extend_from_slice(&ids[..7]);
    let (_, eighth) = greedy(model, kv_type, &seven, 0);
    let best = eighth[argmax(&eighth) as usize];
    assert!(
        best - eighth[12693] < 0.15,
        "{kv_type:?}: llama.cpp's eighth token trails by {}",
        best - eighth[12693]
    );

    // Teacher-forcing "The" must yield " capital of France is Paris.<|im_end|>".
    let mut forced = CHAT_PROMPT.to_vec();
    forced.push(504);
    let (ids, _) = greedy(model, kv_type, &forced, 7);
    assert_eq!(ids, [3575, 282, 4649, 314, 7042, 30, 2], "{kv_type:?}");
}

#[test]
fn forward_rejects_bad_batches_without_touching_the_cache() {
    let Some(model) = model() else { return };
    let mut pool = pool_for(model);
    let mut kv = SeqKv::default();
    step(model, &mut pool, &mut kv, &CHAT_PROMPT[..5], false);

    // No room reserved past the current block fill: internal error, length unchanged.
    let room = kv.blocks().len() * pool.block_size() - kv.len();
    let too_many = vec![42u32; room + 1];
    let mut items = [BatchItem {
        tokens: &too_many,
        kv: &mut kv,
        all_logits: false,
    }];
    let err = model.forward(&mut pool, &mut items).unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert_eq!(kv.len(), 5);

    let vocab = model.config().vocab_size as u32;
    let mut items = [BatchItem {
        tokens: &[vocab],
        kv: &mut kv,
        all_logits: false,
    }];
    let err = model.forward(&mut pool, &mut items).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);

    let mut items = [BatchItem {
        tokens: &[],
        kv: &mut kv,
        all_logits: false,
    }];
    let err = model.forward(&mut pool, &mut items).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(kv.len(), 5);

    assert!(model.forward(&mut pool, &mut []).unwrap().is_empty());
}

/// A tiny config: 2 layers x 2 kv heads x 4 dims -> 2 * 2 * 8 * 4 bytes = 128 bytes per position.
fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        n_layer: 2,
        n_embd: 16,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 4,
        n_ff: 32,
        context_length: 64,
        vocab_size: 100,
        rope_freq_base: 10000.0,
        rope_dim: 4,
        rms_eps: 1e-5,
        use_rope: vec![true; 2],
        tied_embeddings: true,
    }
}

#[test]
fn kv_pool_accounting() {
    let cfg = tiny_config();
    // f16 (the default): a block of 4 positions is 2 layers × 4 × 8 (kv dim) × 2 (K and V) ×
    // 2 bytes = 256 bytes; f32 twice that
    let f16_pool = KvBlockPool::new(&cfg, 4, 1000).unwrap();
    assert_eq!(
        (f16_pool.kv_type(), f16_pool.bytes_per_block()),
        (KvType::F16, 256)
    );
    assert_eq!(f16_pool.total_blocks(), 3);
    // q8: 2 × 4 × 8 × 2 one-byte elements, plus a 4-byte scale per 4-dim head vector (16 of
    // them for K, 16 for V): as much as f16 at this toy head size, a little over half at 64
    let q8_pool = KvBlockPool::with_type(&cfg, 4, 1000, KvType::Q8).unwrap();
    assert_eq!(q8_pool.bytes_per_block(), 128 + 128);
    // 10 blocks plus change
    let mut pool = KvBlockPool::with_type(&cfg, 4, 10 * 512 + 100, KvType::F32).unwrap();
    assert_eq!(pool.bytes_per_block(), 512);
    assert_eq!(
        (pool.block_size(), pool.total_blocks(), pool.free_blocks()),
        (4, 10, 10)
    );

    let mut a = SeqKv::default();
    assert!(a.is_empty());
    assert_eq!(pool.blocks_needed(&a, 0), 0);
    assert_eq!(pool.blocks_needed(&a, 1), 1);
    assert_eq!(pool.blocks_needed(&a, 9), 3);
    pool.reserve(&mut a, 9).unwrap();
    assert_eq!((a.blocks().len(), a.len(), pool.free_blocks()), (3, 0, 7));
    // reserving what is already held takes nothing more
    pool.reserve(&mut a, 12).unwrap();
    assert_eq!(pool.free_blocks(), 7);
    assert_eq!(pool.blocks_needed(&a, 13), 1);

    // all or nothing: 8 blocks wanted, 7 free
    let mut b = SeqKv::default();
    let err = pool.reserve(&mut b, 32).unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceExhausted);
    assert_eq!((b.blocks().len(), pool.free_blocks()), (0, 7));
    pool.reserve(&mut b, 28).unwrap();
    assert_eq!(pool.free_blocks(), 0);
    assert_eq!(
        pool.reserve(&mut a, 13).unwrap_err().code,
        ErrorCode::ResourceExhausted
    );
    assert_eq!(a.blocks().len(), 3);

    // release returns everything; a second release is harmless
    let b_blocks = b.blocks().to_vec();
    pool.release(&mut b);
    assert_eq!((b.len(), b.blocks().len(), pool.free_blocks()), (0, 0, 7));
    pool.release(&mut b);
    assert_eq!(pool.free_blocks(), 7);
    // freed blocks are handed out again, none twice
    let mut c = SeqKv::default();
    pool.reserve(&mut c, 28).unwrap();
    let mut got = c.blocks().to_vec();
    got.sort();
    let mut want = b_blocks;
    want.sort();
    assert_eq!(got, want);
    pool.release(&mut c);
}

/// Attention scores 16 positions at a time; block sizes below, between and above that take its
/// partial-width paths and group the sums differently (the attention unit test holds each to
/// 1e-5 of an f64 evaluation). Through 30 layers of 8-bit activation quantization such
/// rounding differences surface as occasional flipped quants, so logits agree on every row's
/// argmax and to about 1% on average, not bit for bit.
#[test]
fn kv_block_size_does_not_change_logits() {
    let Some(model) = model() else { return };
    let vocab = model.config().vocab_size;
    let logits = |bs: usize| {
        let mut pool = KvBlockPool::new(model.config(), bs, 16 << 20).unwrap();
        let mut kv = SeqKv::default();
        step(model, &mut pool, &mut kv, &CHAT_PROMPT, true)
    };
    let want = logits(16);
    let scale = want.iter().map(|v| v.abs()).sum::<f32>() / want.len() as f32;
    for bs in [1, 5, 20, 37] {
        let got = logits(bs);
        compare_rows(&want, &got, vocab, "block size");
        let mean = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / want.len() as f32;
        assert!(
            mean <= 0.02 * scale,
            "block size {bs}: mean logit difference {mean} of {scale}"
        );
    }
}

#[test]
fn kv_truncate_keeps_prefix_blocks() {
    let Some(model) = model() else { return };
    let mut pool = KvBlockPool::new(model.config(), 4, 16 << 20).unwrap();
    let free0 = pool.free_blocks();
    let mut kv = SeqKv::default();
    let full = step(model, &mut pool, &mut kv, &CHAT_PROMPT, true);
    assert_eq!((kv.len(), kv.blocks().len()), (37, 10));

    pool.truncate(&mut kv, 50); // past the end: nothing written is dropped
    assert_eq!((kv.len(), kv.blocks().len()), (37, 10));
    pool.truncate(&mut kv, 9);
    assert_eq!((kv.len(), kv.blocks().len()), (9, 3));
    assert_eq!(pool.free_blocks(), free0 - 3);
    pool.truncate(&mut kv, 8);
    assert_eq!((kv.len(), kv.blocks().len()), (8, 2));

    // Re-running the dropped suffix reproduces the original logits: the kept prefix is intact.
    let vocab = model.config().vocab_size;
    let redo = step(model, &mut pool, &mut kv, &CHAT_PROMPT[8..], true);
    assert_eq!(kv.len(), 37);
    let d = compare_rows(&full[8 * vocab..], &redo, vocab, "after truncate");
    assert_eq!(d, 0.0);

    pool.release(&mut kv);
    assert_eq!((kv.len(), pool.free_blocks()), (0, free0));
}

#[test]
fn kv_pool_rejects_budgets_below_one_block() {
    let cfg = tiny_config();
    let err = KvBlockPool::with_type(&cfg, 4, 511, KvType::F32)
        .err()
        .expect("0 blocks must be rejected");
    assert_eq!(err.code, ErrorCode::ResourceExhausted);
    let err = KvBlockPool::new(&cfg, 4, 255)
        .err()
        .expect("0 f16 blocks must be rejected");
    assert_eq!(err.code, ErrorCode::ResourceExhausted);
    assert_eq!(KvBlockPool::new(&cfg, 4, 256).unwrap().total_blocks(), 1);
    let err = KvBlockPool::new(&cfg, 0, 1 << 20)
        .err()
        .expect("block size 0 must be rejected");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    let f32_pool = KvBlockPool::with_type(&cfg, 4, 512, KvType::F32).unwrap();
    assert_eq!(f32_pool.total_blocks(), 1);
}
