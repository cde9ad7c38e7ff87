//! Shared helpers for integration tests: a small GGUF writer, deterministic weights, a tiny
//! llama-shaped model, and the location of the real model file.
//!
//! The writer is deliberately permissive (any magic, version, type id, dims or offset) so tests
//! can build hostile files as easily as valid ones.

#![allow(dead_code)] // each test binary uses a different subset

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
pub use smolrt_core::gguf::MetadataValue;
use smolrt_core::gguf::TensorType;
use std::path::PathBuf;

pub use MetadataValue as V;

/// One tensor as it will be written. `dims` are in ggml order (row length first).
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
    /// Written in place of the real data-relative offset, to build bad layouts.
    pub offset_override: Option<u64>,
}

/// Byte positions inside a written file, for targeted corruption.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Start of each metadata entry (its key length field).
    pub kv_starts: Vec<usize>,
    /// Start of each tensor info (its name length field).
    pub tensor_info_starts: Vec<usize>,
    pub data_start: usize,
    /// Absolute start of each tensor's bytes as laid out (ignores offset overrides).
    pub tensor_data_starts: Vec<usize>,
}

/// Position of the u64 tensor count and kv count in every v2/v3 file.
pub const TENSOR_COUNT_AT: usize = 8;
pub const KV_COUNT_AT: usize = 16;

#[derive(Debug, Clone)]
pub struct GgufWriter {
    pub magic: [u8; 4],
    pub version: u32,
    /// Layout alignment; set together with the `general.alignment` key by [`Self::alignment`].
    pub align: usize,
    pub kvs: Vec<(String, MetadataValue)>,
    pub tensors: Vec<TensorEntry>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    pub fn new() -> Self {
        Self {
            magic: *b"GGUF",
            version: 3,
            align: 32,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub fn version(mut self, v: u32) -> Self {
        self.version = v;
        self
    }

    /// Uses `a` for layout and records it as `general.alignment` (u32).
    pub fn alignment(mut self, a: usize) -> Self {
        self.align = a;
        self.kvs
            .push(("general.alignment".into(), V::U32(a as u32)));
        self
    }

    pub fn kv(mut self, key: &str, value: MetadataValue) -> Self {
        self.kvs.push((key.into(), value));
        self
    }

    /// Replaces the value of an existing key (or appends it).
    pub fn set_kv(mut self, key: &str, value: MetadataValue) -> Self {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key.into(), value)),
        }
        self
    }

    pub fn remove_kv(mut self, key: &str) -> Self {
        self.kvs.retain(|(k, _)| k != key);
        self
    }

    /// A tensor of `dtype` with ggml `dims` and its raw encoded bytes.
    pub fn tensor(self, name: &str, dims: &[usize], dtype: GgmlDType, data: Vec<u8>) -> Self {
        let dims = dims.iter().map(|&d| d as u64).collect();
        let id = TensorType::try_from(dtype).expect("a storage type").id();
        self.tensor_raw(name, dims, id, data, None)
    }

    /// Anything goes: unknown type ids, zero or many dims, forged offsets.
    pub fn tensor_raw(
        mut self,
        name: &str,
        dims: Vec<u64>,
        type_id: u32,
        data: Vec<u8>,
        offset_override: Option<u64>,
    ) -> Self {
        self.tensors.push(TensorEntry {
            name: name.into(),
            dims,
            type_id,
            data,
            offset_override,
        });
        self
    }

    pub fn remove_tensor(mut self, name: &str) -> Self {
        self.tensors.retain(|t| t.name != name);
        self
    }

    pub fn tensor_mut(&mut self, name: &str) -> &mut TensorEntry {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("test bug: no tensor '{name}' in writer"))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_layout().0
    }

    pub fn to_bytes_with_layout(&self) -> (Vec<u8>, Layout) {
        let mut out = Vec::new();
        let mut layout = Layout::default();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (key, value) in &self.kvs {
            layout.kv_starts.push(out.len());
            write_string(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            write_value(&mut out, value);
        }
        let mut relative = Vec::new();
        let mut next = 0usize;
        for t in &self.tensors {
            relative.push(next);
            next = align_up(next + t.data.len(), self.align);
        }
        for (t, &rel) in self.tensors.iter().zip(&relative) {
            layout.tensor_info_starts.push(out.len());
            write_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            let offset = t.offset_override.unwrap_or(rel as u64);
            out.extend_from_slice(&offset.to_le_bytes());
        }
        layout.data_start = align_up(out.len(), self.align);
        out.resize(layout.data_start, 0);
        for (t, &rel) in self.tensors.iter().zip(&relative) {
            let at = layout.data_start + rel;
            out.resize(at, 0);
            layout.tensor_data_starts.push(at);
            out.extend_from_slice(&t.data);
        }
        (out, layout)
    }
}

fn align_up(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_value(out: &mut Vec<u8>, v: &MetadataValue) {
    match v {
        V::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::Bool(x) => out.push(u8::from(*x)),
        V::String(s) => write_string(out, s),
        V::Array(items) => {
            // An empty array's element type is invisible to readers; u32 is as good as any.
            let elem_type = items.first().map_or(4, |i| i.type_id());
            out.extend_from_slice(&elem_type.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
    }
}

pub fn str_array(items: &[&str]) -> MetadataValue {
    V::Array(items.iter().map(|s| V::String((*s).into())).collect())
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Deterministic pseudo-random values in [-scale, scale): tests must be reproducible.
pub fn seeded_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

/// Encodes `values` (row-major, ggml `dims` with the row length first) as `dtype` using candle's
/// quantizer, so the bytes are what a real converter would write.
pub fn encode(values: &[f32], dims: &[usize], dtype: GgmlDType) -> Vec<u8> {
    let shape: Vec<usize> = dims.iter().rev().copied().collect();
    let t = Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).expect("tensor");
    let q = QTensor::quantize(&t, dtype).expect("quantize");
    q.data().expect("data").into_owned()
}

/// A tiny SplitMix64, so tests need no RNG crate API.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Shape and encoding of a tiny llama-family model. Sizes must keep every row length a multiple
/// of the block sizes in use (32 for Q4_1/Q8_0).
#[derive(Debug, Clone)]
pub struct TinyModel {
    pub arch: &'static str,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub tied: bool,
    pub matrix_dtype: GgmlDType,
    pub embd_dtype: GgmlDType,
    pub seed: u64,
}

impl Default for TinyModel {
    fn default() -> Self {
        Self {
            arch: "llama",
            n_layer: 2,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 96,
            vocab: 40,
            context: 256,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            tied: true,
            matrix_dtype: GgmlDType::Q4_1,
            embd_dtype: GgmlDType::Q8_0,
            seed: 1,
        }
    }
}

impl TinyModel {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// The weights as f32, keyed by tensor name, with ggml dims; same seed, same values.
    pub fn weights(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let (e, ff, v) = (self.n_embd, self.n_ff, self.vocab);
        let q = self.n_head * self.head_dim();
        let kv = self.n_head_kv * self.head_dim();
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            ("token_embd.weight".into(), vec![e, v]),
            ("output_norm.weight".into(), vec![e]),
        ];
        if !self.tied {
            shapes.push(("output.weight".into(), vec![e, v]));
        }
        for il in 0..self.n_layer {
            let n = |t: &str| format!("blk.{il}.{t}.weight");
            shapes.extend([
                (n("attn_norm"), vec![e]),
                (n("attn_q"), vec![e, q]),
                (n("attn_k"), vec![e, kv]),
                (n("attn_v"), vec![e, kv]),
                (n("attn_output"), vec![q, e]),
                (n("ffn_norm"), vec![e]),
                (n("ffn_gate"), vec![e, ff]),
                (n("ffn_up"), vec![e, ff]),
                (n("ffn_down"), vec![ff, e]),
            ]);
        }
        shapes
            .into_iter()
            .enumerate()
            .map(|(i, (name, dims))| {
                let n = dims.iter().product();
                let values = if dims.len() == 1 {
                    // Norm weights near 1, as in trained models.
                    seeded_values(self.seed ^ ((i as u64) << 8), n, 0.1)
                        .into_iter()
                        .map(|x| 1.0 + x)
                        .collect()
                } else {
                    seeded_values(self.seed ^ ((i as u64) << 8), n, 0.5)
                };
                (name, dims, values)
            })
            .collect()
    }

    pub fn dtype_of(&self, name: &str, dims: &[usize]) -> GgmlDType {
        if dims.len() == 1 {
            GgmlDType::F32
        } else if name == "token_embd.weight" {
            self.embd_dtype
        } else {
            self.matrix_dtype
        }
    }

    pub fn writer(&self) -> GgufWriter {
        let a = self.arch;
        let tokens: Vec<String> = (0..self.vocab).map(|i| format!("tok{i}")).collect();
        let mut w = GgufWriter::new()
            .kv("general.architecture", V::String(a.into()))
            .kv("general.name", V::String("tiny test model".into()))
            .kv(&format!("{a}.block_count"), V::U32(self.n_layer as u32))
            .kv(&format!("{a}.context_length"), V::U32(self.context as u32))
            .kv(&format!("{a}.embedding_length"), V::U32(self.n_embd as u32))
            .kv(
                &format!("{a}.feed_forward_length"),
                V::U32(self.n_ff as u32),
            )
            .kv(
                &format!("{a}.attention.head_count"),
                V::U32(self.n_head as u32),
            )
            .kv(
                &format!("{a}.attention.head_count_kv"),
                V::U32(self.n_head_kv as u32),
            )
            .kv(&format!("{a}.rope.freq_base"), V::F32(self.rope_base))
            .kv(
                &format!("{a}.attention.layer_norm_rms_epsilon"),
                V::F32(self.rms_eps),
            )
            .kv("tokenizer.ggml.model", V::String("gpt2".into()))
            .kv(
                "tokenizer.ggml.tokens",
                V::Array(tokens.into_iter().map(V::String).collect()),
            );
        for (name, dims, values) in self.weights() {
            let dtype = self.dtype_of(&name, &dims);
            let bytes = encode(&values, &dims, dtype);
            w = w.tensor(&name, &dims, dtype, bytes);
        }
        w
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.writer().to_bytes()
    }
}

/// The real default model, if present: `SMOLRT_TEST_MODEL`, else `<repo>/models/...`.
/// Prints why when it is absent so a skipped test is visible in `--nocapture` output.
pub fn real_model_path() -> Option<PathBuf> {
    let path = match std::env::var_os("SMOLRT_TEST_MODEL") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipping: real model not found at {} (set SMOLRT_TEST_MODEL)",
            path.display()
        );
        None
    }
}
