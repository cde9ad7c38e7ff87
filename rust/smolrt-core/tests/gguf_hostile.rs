//! GGUF loading against valid, broken and hostile files. Every bad file must yield a ModelLoad
//! error that names the problem, never a panic or a huge allocation.

mod common;

use common::*;
use smolrt_core::config::{Architecture, ModelConfig};
use smolrt_core::gguf::{GgmlDType, GgufFile, TensorType};
use smolrt_core::{Error, ErrorCode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

fn load_err(bytes: Vec<u8>) -> Error {
    match GgufFile::from_bytes(bytes) {
        Ok(_) => panic!("expected the file to be rejected"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::ModelLoad, "{e}");
            e
        }
    }
}

fn config_err(bytes: Vec<u8>) -> Error {
    let file = GgufFile::from_bytes(bytes).expect("file itself is valid");
    let e = ModelConfig::from_gguf(&file).expect_err("config should be rejected");
    assert_eq!(e.code, ErrorCode::ModelLoad, "{e}");
    e
}

fn assert_mentions(e: &Error, parts: &[&str]) {
    for p in parts {
        assert!(
            e.message.contains(p),
            "message {:?} lacks {:?}",
            e.message,
            p
        );
    }
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// One small F32 tensor file, for layout tests that need no model.
fn one_tensor(dims: Vec<u64>, type_id: u32, data: Vec<u8>, offset: Option<u64>) -> GgufWriter {
    GgufWriter::new()
        .kv("general.architecture", V::String("llama".into()))
        .tensor_raw("t", dims, type_id, data, offset)
}

#[test]
fn valid_tiny_llama_parses_and_configures() {
    let model = TinyModel::default();
    let file = GgufFile::from_bytes(model.bytes()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.tensors().len(), 2 + 9 * model.n_layer);
    assert_eq!(file.metadata()[0].0, "general.architecture");
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");

    let c = ModelConfig::from_gguf(&file).unwrap();
    assert_eq!(c.architecture, Architecture::Llama);
    assert_eq!(
        (
            c.n_layer,
            c.n_embd,
            c.n_head,
            c.n_head_kv,
            c.head_dim,
            c.n_ff
        ),
        (2, 64, 4, 2, 16, 96)
    );
    assert_eq!((c.context_length, c.vocab_size, c.rope_dim), (256, 40, 16));
    assert_eq!((c.rope_freq_base, c.rms_eps), (10_000.0, 1e-5));
    assert_eq!(c.use_rope, vec![true, true]);
    assert!(c.tied_embeddings);

    // Tensors are laid out in file order, aligned, and reach the right bytes.
    let k = file.tensor_info("blk.1.attn_k.weight").unwrap();
    assert_eq!(k.dims, vec![64, 32]);
    assert_eq!(k.dtype, TensorType::Q4_1);
    assert_eq!(k.offset % 32, 0);
    assert_eq!(k.size_bytes, 64 * 32 / 32 * 20);
}

#[test]
fn qtensor_has_candle_shape_and_original_values() {
    let model = TinyModel::default();
    let file = GgufFile::from_bytes(model.bytes()).unwrap();
    for (name, dims, values) in model.weights() {
        let q = file.qtensor(&name).unwrap();
        let rev: Vec<usize> = dims.iter().rev().copied().collect();
        assert_eq!(q.shape().dims(), rev.as_slice(), "{name}");
        let got = q
            .dequantize(&candle_core::Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let max_err = got
            .iter()
            .zip(&values)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Exact for F32 norms; Q4_1 over [-0.5, 0.5) has a step of about 1/15.
        let tol = if dims.len() == 1 { 0.0 } else { 0.05 };
        assert!(max_err <= tol, "{name}: max error {max_err}");
    }
    let e = file.qtensor("nope.weight").unwrap_err();
    assert_eq!(e.code, ErrorCode::ModelLoad);
    assert_mentions(&e, &["'nope.weight'"]);
}

#[test]
fn unaligned_data_is_copied_before_candle_reads_it() {
    // Alignment 1 lets the data section start at an odd byte; candle needs aligned floats.
    let values: Vec<f32> = (0..8).map(|i| i as f32 * 0.25 - 1.0).collect();
    let w = GgufWriter::new()
        .alignment(1)
        .kv("xy", V::U8(0)) // key length chosen to make the header end on an odd byte
        .tensor("t", &[8], GgmlDType::F32, f32_bytes(&values));
    let (bytes, layout) = w.to_bytes_with_layout();
    assert_eq!(layout.data_start % 2, 1, "test needs an odd data start");
    let file = GgufFile::from_bytes(bytes).unwrap();
    let t = file
        .qtensor("t")
        .unwrap()
        .dequantize(&candle_core::Device::Cpu);
    assert_eq!(t.unwrap().to_vec1::<f32>().unwrap(), values);
}

#[test]
fn version_2_is_accepted_1_and_99_are_not() {
    let model = TinyModel::default();
    let file = GgufFile::from_bytes(model.writer().version(2).to_bytes()).unwrap();
    assert_eq!(file.version(), 2);

    let e = load_err(model.writer().version(1).to_bytes());
    assert_mentions(&e, &["version 1", "not supported"]);
    let e = load_err(model.writer().version(99).to_bytes());
    assert_mentions(&e, &["version 99"]);
    let e = load_err(model.writer().version(3u32.swap_bytes()).to_bytes());
    assert_mentions(&e, &["big-endian"]);
}

#[test]
fn bad_magic_says_what_was_found() {
    let mut w = TinyModel::default().writer();
    w.magic = *b"GGML";
    let e = load_err(w.to_bytes());
    assert_mentions(&e, &["magic", "GGML", "\"GGUF\""]);
    let e = load_err(Vec::new());
    assert_mentions(&e, &["truncated", "magic", "byte 0"]);
}

#[test]
fn every_truncation_is_an_error_naming_a_byte() {
    let bytes = TinyModel::default().bytes();
    for cut in 0..bytes.len() {
        let prefix = bytes[..cut].to_vec();
        let e = match catch_unwind(|| GgufFile::from_bytes(prefix)) {
            Ok(r) => r
                .err()
                .unwrap_or_else(|| panic!("prefix of {cut} bytes was accepted")),
            Err(_) => panic!("panic on prefix of {cut} bytes"),
        };
        assert_eq!(e.code, ErrorCode::ModelLoad);
        assert!(
            e.message.contains("truncated") && e.message.contains("byte"),
            "cut {cut}: {}",
            e.message
        );
    }
}

#[test]
fn random_bit_flips_never_panic() {
    let model = TinyModel::default();
    let (bytes, layout) = model.writer().to_bytes_with_layout();
    let mut rng = SplitMix64(0x5eed);
    let (mut ok, mut err) = (0, 0);
    for round in 0..600 {
        let mut corrupt = bytes.clone();
        // Mostly hit the header, where a flip changes structure; tensor bytes rarely matter.
        let span = if round % 5 == 0 {
            corrupt.len()
        } else {
            layout.data_start
        };
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(span);
            corrupt[at] ^= 1 << rng.below(8);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let file = GgufFile::from_bytes(corrupt)?;
            let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
            for n in &names {
                file.qtensor(n)?;
            }
            ModelConfig::from_gguf(&file).map(|_| ())
        }));
        match outcome {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                assert_eq!(e.code, ErrorCode::ModelLoad, "round {round}: {e}");
                err += 1;
            }
            Err(_) => panic!("panic in round {round}"),
        }
    }
    println!("bit flips: {ok} accepted, {err} rejected");
    assert!(
        err > 100,
        "flips in the header should mostly be caught ({err})"
    );
}

#[test]
fn huge_counts_fail_fast() {
    let bytes = TinyModel::default().bytes();
    for (at, value) in [
        (TENSOR_COUNT_AT, 1u64 << 60),
        (KV_COUNT_AT, 1u64 << 60),
        (TENSOR_COUNT_AT, u64::MAX),
        (KV_COUNT_AT, u64::MAX),
    ] {
        let mut b = bytes.clone();
        put_u64(&mut b, at, value);
        let start = Instant::now();
        let e = load_err(b);
        assert!(
            start.elapsed().as_millis() < 100,
            "took {:?}",
            start.elapsed()
        );
        assert_mentions(&e, &["truncated or corrupt header", &value.to_string()]);
    }
}

#[test]
fn huge_string_and_array_lengths_fail_fast() {
    let w = TinyModel::default().writer();
    let tokens_kv = w
        .kvs
        .iter()
        .position(|(k, _)| k == "tokenizer.ggml.tokens")
        .unwrap();
    let (bytes, layout) = w.to_bytes_with_layout();

    // The first key's length.
    let mut b = bytes.clone();
    put_u64(&mut b, layout.kv_starts[0], 1 << 62);
    let e = load_err(b);
    assert_mentions(
        &e,
        &["truncated", "metadata key #0", &(1u64 << 62).to_string()],
    );

    // The token array's length: key length + key + value type + element type.
    let key_len = "tokenizer.ggml.tokens".len();
    let len_at = layout.kv_starts[tokens_kv] + 8 + key_len + 4 + 4;
    let mut b = bytes.clone();
    put_u64(&mut b, len_at, 1 << 61);
    let e = load_err(b);
    assert_mentions(&e, &["tokenizer.ggml.tokens", &(1u64 << 61).to_string()]);

    // One token string's length.
    let first_token_at = len_at + 8;
    let mut b = bytes;
    put_u64(&mut b, first_token_at, u64::MAX);
    let e = load_err(b);
    assert_mentions(&e, &["truncated", "tokenizer.ggml.tokens"]);
}

#[test]
fn tensor_past_end_of_file() {
    let e = load_err(one_tensor(vec![4], 0, f32_bytes(&[0.0; 4]), Some(1 << 20)).to_bytes());
    assert_mentions(&e, &["truncated", "tensor 't'", "needs 16 bytes"]);
    let e = load_err(one_tensor(vec![4], 0, f32_bytes(&[0.0; 4]), Some(u64::MAX - 31)).to_bytes());
    assert_mentions(&e, &["tensor 't'"]);
    // Dims claiming more data than was written.
    let e = load_err(one_tensor(vec![4, 1000], 0, f32_bytes(&[0.0; 4]), None).to_bytes());
    assert_mentions(&e, &["truncated", "tensor 't'", "16000"]);
}

#[test]
fn overlapping_tensors() {
    let w = GgufWriter::new()
        .tensor("a", &[16], GgmlDType::F32, f32_bytes(&[1.0; 16]))
        .tensor_raw("b", vec![8], 0, f32_bytes(&[2.0; 8]), Some(32));
    let e = load_err(w.to_bytes());
    assert_mentions(&e, &["'a'", "'b'", "overlap"]);
}

#[test]
fn misaligned_offset() {
    let w = GgufWriter::new()
        .tensor("a", &[16], GgmlDType::F32, f32_bytes(&[1.0; 16]))
        .tensor_raw("b", vec![8], 0, f32_bytes(&[2.0; 8]), Some(68));
    let e = load_err(w.to_bytes());
    assert_mentions(&e, &["tensor 'b'", "68", "alignment 32"]);
}

#[test]
fn bad_alignment_key() {
    let w = GgufWriter::new()
        .alignment(24)
        .tensor("a", &[8], GgmlDType::F32, f32_bytes(&[1.0; 8]));
    let e = load_err(w.to_bytes());
    assert_mentions(&e, &["general.alignment", "24", "power of two"]);
    let w = GgufWriter::new().kv("general.alignment", V::String("32".into()));
    let e = load_err(w.to_bytes());
    assert_mentions(&e, &["general.alignment", "string"]);
    // A legal, unusual alignment lays out and loads fine.
    let w = GgufWriter::new()
        .alignment(64)
        .tensor("a", &[8], GgmlDType::F32, f32_bytes(&[1.0; 8]))
        .tensor("b", &[8], GgmlDType::F32, f32_bytes(&[2.0; 8]));
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(file.tensor_info("b").unwrap().offset % 64, 0);
    assert_eq!(
        file.tensor_data(file.tensor_info("b").unwrap()),
        f32_bytes(&[2.0; 8])
    );
}

#[test]
fn unknown_dtype_id() {
    let e = load_err(one_tensor(vec![32], 4, vec![0; 64], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "type id 4"]);
    let e = load_err(one_tensor(vec![32], 99, vec![0; 64], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "type id 99"]);
}

#[test]
fn dimension_count_and_zero_dims() {
    let e = load_err(one_tensor(vec![], 0, vec![0; 4], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "0 dimensions"]);
    let e = load_err(one_tensor(vec![1; 5], 0, vec![0; 4], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "5 dimensions"]);
    let e = load_err(one_tensor(vec![4, 0], 0, vec![], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "dimension 1 equal to 0"]);
    // Four dims is the ggml maximum and must load.
    let file = GgufFile::from_bytes(one_tensor(vec![2; 4], 0, vec![0; 64], None).to_bytes());
    assert_eq!(file.unwrap().tensors()[0].dims, vec![2; 4]);
}

#[test]
fn huge_dims_overflow_is_an_error() {
    let e = load_err(one_tensor(vec![1 << 32, 1 << 32, 1 << 32], 0, vec![], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "overflow"]);
}

#[test]
fn row_length_must_be_a_block_multiple() {
    // 48 Q4_0 elements per row is one and a half blocks.
    let e = load_err(one_tensor(vec![48, 2], 2, vec![0; 54], None).to_bytes());
    assert_mentions(&e, &["tensor 't'", "row length 48", "block size 32"]);
}

#[test]
fn duplicate_key_and_tensor_name() {
    let w = TinyModel::default()
        .writer()
        .kv("general.architecture", V::String("llama".into()));
    let e = load_err(w.to_bytes());
    assert_mentions(
        &e,
        &["duplicate metadata key 'general.architecture'", "byte"],
    );
    let w = GgufWriter::new()
        .tensor("a", &[8], GgmlDType::F32, f32_bytes(&[1.0; 8]))
        .tensor("a", &[8], GgmlDType::F32, f32_bytes(&[1.0; 8]));
    let e = load_err(w.to_bytes());
    assert_mentions(&e, &["duplicate tensor name 'a'"]);
}

#[test]
fn bad_metadata_encodings() {
    // Key with invalid UTF-8: build a valid file, then corrupt a key byte.
    let (mut b, layout) = GgufWriter::new().kv("abc", V::U8(1)).to_bytes_with_layout();
    b[layout.kv_starts[0] + 8] = 0xff;
    let e = load_err(b);
    assert_mentions(&e, &["metadata key #0", "UTF-8"]);

    // Token string with invalid UTF-8.
    let (mut b, layout) = GgufWriter::new()
        .kv("tokenizer.ggml.tokens", str_array(&["ok", "xy"]))
        .to_bytes_with_layout();
    let second_token = layout.kv_starts[0] + 8 + 21 + 4 + 4 + 8 + (8 + 2) + 8;
    b[second_token] = 0xc3;
    let e = load_err(b);
    assert_mentions(&e, &["tokenizer.ggml.tokens", "UTF-8"]);

    // Arrays of arrays are fine; a third level is not.
    let two = V::Array(vec![V::Array(vec![V::U8(1)])]);
    let file = GgufFile::from_bytes(GgufWriter::new().kv("nested", two.clone()).to_bytes());
    assert_eq!(file.unwrap().get("nested"), Some(&two));
    let three = V::Array(vec![two]);
    let e = load_err(GgufWriter::new().kv("nested", three).to_bytes());
    assert_mentions(&e, &["'nested'", "deeper than 2"]);

    // Unknown value type id.
    let (mut b, layout) = GgufWriter::new().kv("k", V::U8(1)).to_bytes_with_layout();
    b[layout.kv_starts[0] + 8 + 1] = 13;
    let e = load_err(b);
    assert_mentions(&e, &["'k'", "unknown value type id 13"]);
}

#[test]
fn wrong_shape_of_attn_k() {
    let model = TinyModel::default();
    let mut w = model.writer();
    let bad = encode(&seeded_values(9, 64 * 64, 0.5), &[64, 64], GgmlDType::Q4_1);
    let t = w.tensor_mut("blk.1.attn_k.weight");
    t.dims = vec![64, 64];
    t.data = bad;
    let e = config_err(w.to_bytes());
    assert_eq!(
        e.message,
        "tensor 'blk.1.attn_k.weight' has shape [64, 64], expected [64, 32]"
    );
}

#[test]
fn quantized_norm_is_rejected() {
    let mut w = TinyModel::default().writer();
    let t = w.tensor_mut("blk.0.ffn_norm.weight");
    t.type_id = 1; // F16: 64 elements, 128 bytes
    t.data.truncate(128);
    let e = config_err(w.to_bytes());
    assert_mentions(&e, &["'blk.0.ffn_norm.weight'", "expected F32"]);
}

#[test]
fn unknown_architecture() {
    let w = TinyModel::default()
        .writer()
        .set_kv("general.architecture", V::String("gpt2".into()));
    let e = config_err(w.to_bytes());
    assert_eq!(
        e.message,
        "unsupported architecture 'gpt2' (supported: llama, smollm3)"
    );
    let w = TinyModel::default()
        .writer()
        .remove_kv("general.architecture");
    let e = config_err(w.to_bytes());
    assert_eq!(e.message, "metadata key 'general.architecture' is missing");
}

#[test]
fn missing_tensor_and_missing_key() {
    let w = TinyModel::default()
        .writer()
        .remove_tensor("blk.1.ffn_down.weight");
    let e = config_err(w.to_bytes());
    assert_eq!(e.message, "tensor 'blk.1.ffn_down.weight' is missing");

    let w = TinyModel::default()
        .writer()
        .remove_kv("llama.attention.layer_norm_rms_epsilon");
    let e = config_err(w.to_bytes());
    assert_eq!(
        e.message,
        "metadata key 'llama.attention.layer_norm_rms_epsilon' is missing"
    );

    let w = TinyModel::default()
        .writer()
        .set_kv("llama.block_count", V::String("2".into()));
    let e = config_err(w.to_bytes());
    assert_eq!(
        e.message,
        "metadata key 'llama.block_count' has type string, expected u32"
    );
}

#[test]
fn inconsistent_hyperparameters() {
    let kv = |k: &str, v: V| config_err(TinyModel::default().writer().set_kv(k, v).to_bytes());
    assert_mentions(
        &kv("llama.attention.head_count_kv", V::U32(3)),
        &["not a multiple"],
    );
    assert_mentions(
        &kv("llama.attention.head_count_kv", V::U32(0)),
        &["head_count_kv is 0"],
    );
    assert_mentions(
        &kv("llama.block_count", V::U32(100_000)),
        &["block_count is 100000"],
    );
    assert_mentions(
        &kv("llama.context_length", V::U64(1 << 40)),
        &["context_length"],
    );
    assert_mentions(
        &kv("llama.rope.dimension_count", V::U32(18)),
        &["rope.dimension_count 18"],
    );
    assert_mentions(
        &kv("llama.attention.layer_norm_rms_epsilon", V::F32(f32::NAN)),
        &["layer_norm_rms_epsilon"],
    );
    // A vocab size key that disagrees with the embedding surfaces as a shape error.
    assert_mentions(
        &kv("llama.vocab_size", V::U32(41)),
        &["'token_embd.weight' has shape [64, 40], expected [64, 41]"],
    );
}

#[test]
fn untied_output_and_smollm3() {
    let model = TinyModel {
        tied: false,
        arch: "smollm3",
        n_layer: 8,
        ..TinyModel::default()
    };
    let file = GgufFile::from_bytes(model.bytes()).unwrap();
    let c = ModelConfig::from_gguf(&file).unwrap();
    assert_eq!(c.architecture, Architecture::SmolLm3);
    assert!(!c.tied_embeddings);
    assert_eq!(
        c.use_rope,
        vec![true, true, true, false, true, true, true, false]
    );

    // An output.weight of the wrong shape is caught too.
    let mut w = model.writer();
    let t = w.tensor_mut("output.weight");
    t.dims = vec![32, 80];
    let e = config_err(w.to_bytes());
    assert_mentions(
        &e,
        &["'output.weight' has shape [32, 80], expected [64, 40]"],
    );
}

#[test]
fn other_dtypes_load() {
    // K-quants need 256-element rows; F16/BF16/Q5 exercise the remaining block types.
    for dtype in [
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q4_0,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q2K,
        GgmlDType::Q3K,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        let values = seeded_values(3, 256 * 2, 1.0);
        let bytes = encode(&values, &[256, 2], dtype);
        let w = GgufWriter::new().tensor("w", &[256, 2], dtype, bytes.clone());
        let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
        let info = file.tensor_info("w").unwrap();
        assert_eq!(info.dtype.candle(), Some(dtype));
        assert_eq!(file.tensor_data(info), bytes.as_slice(), "{dtype:?}");
        assert_eq!(file.qtensor("w").unwrap().shape().dims(), &[2, 256]);
    }
}

#[test]
fn real_default_model() {
    let Some(path) = real_model_path() else {
        return;
    };
    let start = Instant::now();
    let file = GgufFile::open(&path).unwrap();
    let opened = start.elapsed();
    let config = ModelConfig::from_gguf(&file).unwrap();
    let total = start.elapsed();
    println!(
        "open {} ({} bytes): {:.1} ms; with ModelConfig: {:.1} ms",
        path.display(),
        file.file_size(),
        opened.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
    assert!(total.as_secs_f64() < 5.0, "opening took {total:?}");

    assert_eq!(file.version(), 3);
    assert_eq!(file.tensors().len(), 272);
    assert_eq!(config.architecture, Architecture::Llama);
    assert_eq!(
        (
            config.n_layer,
            config.n_embd,
            config.n_head,
            config.n_head_kv
        ),
        (30, 576, 9, 3)
    );
    assert_eq!(
        (config.head_dim, config.n_ff, config.rope_dim),
        (64, 1536, 64)
    );
    assert_eq!((config.context_length, config.vocab_size), (8192, 49152));
    assert_eq!(config.rope_freq_base, 100_000.0);
    assert!((config.rms_eps - 1e-5).abs() < 1e-9);
    assert!(config.use_rope.iter().all(|&r| r) && config.use_rope.len() == 30);
    assert!(config.tied_embeddings);
    assert_eq!(file.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        file.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    assert_eq!(
        file.get_i32_array("tokenizer.ggml.token_type")
            .unwrap()
            .len(),
        49152
    );

    let embd = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(embd.dtype, TensorType::Q8_0);
    assert_eq!(embd.dims, vec![576, 49152]);
    let q = file.qtensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dtype(), GgmlDType::Q4_1);
    assert_eq!(q.shape().dims(), &[576, 576]);
    let norm = file.qtensor("output_norm.weight").unwrap();
    let w = norm
        .dequantize(&candle_core::Device::Cpu)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(w.iter().all(|x| x.is_finite()) && w.iter().any(|&x| x != 0.0));
}
