//! What each KV cache type costs in model quality: the perplexity of a text read with teacher
//! forcing, and how far each type's logits stray from an f32 cache's over the same text.
//!
//! `cargo run --release -p smolrt-core --example kv_quality [model.gguf] [text.txt]`
//! (default model: $SMOLRT_TEST_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf; default
//! text: the passage below, repeated to `KV_QUALITY_TOKENS` tokens, default 1024, so later
//! positions attend over a long context).

mod common;

use smolrt_core::arch::{BatchItem, Model};
use smolrt_core::config::ModelConfig;
use smolrt_core::gguf::GgufFile;
use smolrt_core::kv::{KvBlockPool, KvType, SeqKv};

/// Varied prose (no repetition within it), written for this tool.
const PASSAGE: &str = "The lighthouse on the northern cape was built in 1871, after three ships \
were lost on the reef in a single winter. Its first keeper, a former schoolteacher named Elias \
Brandt, kept a journal in which he recorded the weather twice a day, the ships that passed, and \
the birds that struck the lamp room windows during the autumn migration. His entries are short \
and precise: wind from the west, rain at noon, a schooner bound for Halifax. Only occasionally \
does he write about himself. In one entry he complains that the oil delivered in March smokes \
badly and blackens the lens; in another he notes that his daughter has learned to trim the wick \
and no longer needs his help. When electricity reached the cape in 1938, the oil lamp was \
replaced by a rotating beacon visible for twenty-two nautical miles, and the keeper's house was \
fitted with a telephone. Ten years later the station was automated entirely. A technician now \
visits twice a year to replace bulbs and check the batteries that power the fog signal. The \
journals survived in a cupboard in the harbour office until a local historian found them, \
transcribed every page, and compared the weather records with modern measurements. She found \
that the autumn storms of the 1870s were no stronger than today's, but that they arrived about \
two weeks earlier in the year. Her article, published in a small regional journal, was later \
cited by climate researchers studying the timing of seasonal winds in the North Atlantic. \
Visitors can now climb the tower on summer weekends. From the gallery the reef is easy to see \
at low tide: a dark line of rock running almost a mile out to sea, marked at its end by a \
green buoy that rings when the swell lifts it.";

fn main() -> smolrt_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = common::model_path(args.next());
    let text = match args.next() {
        Some(p) => std::fs::read_to_string(&p)
            .map_err(|e| smolrt_core::Error::invalid_request(format!("cannot read {p}: {e}")))?,
        None => PASSAGE.to_string(),
    };
    let want: usize = std::env::var("KV_QUALITY_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);

    let file = GgufFile::open(&path)?;
    let cfg = ModelConfig::from_gguf(&file)?;
    let model = Model::load(&file, &cfg)?;
    let tokenizer = smolrt_core::tokenizer::from_gguf(&file)?;
    let once = tokenizer.encode(&text, false, false)?;
    let mut ids = Vec::new();
    while ids.len() < want && !once.is_empty() {
        ids.extend_from_slice(&once[..once.len().min(want - ids.len())]);
    }
    let vocab = cfg.vocab_size;
    println!(
        "{} tokens ({} per pass of the text), model {path}",
        ids.len(),
        once.len()
    );

    let logits_of = |kv_type: KvType| -> smolrt_core::Result<Vec<f32>> {
        let mut pool = KvBlockPool::with_type(&cfg, 16, 256 << 20, kv_type)?;
        let mut kv = SeqKv::default();
        let mut all = Vec::with_capacity(ids.len() * vocab);
        // In prefill-sized chunks, as the engine feeds a long prompt.
        for chunk in ids.chunks(512) {
            pool.reserve(&mut kv, chunk.len())?;
            let mut items = [BatchItem {
                tokens: chunk,
                kv: &mut kv,
                all_logits: true,
            }];
            all.extend_from_slice(model.forward(&mut pool, &mut items)?.item(0));
        }
        Ok(all)
    };
    let reference = logits_of(KvType::F32)?;
    println!("kv type  perplexity  mean |dlogit| vs f32  max |dlogit|  top-1 same as f32");
    for kv_type in [KvType::F32, KvType::F16, KvType::Q8] {
        let logits = if kv_type == KvType::F32 {
            reference.clone()
        } else {
            logits_of(kv_type)?
        };
        let (mut nll, mut diff_sum, mut diff_max, mut same) = (0f64, 0f64, 0f32, 0usize);
        let rows = ids.len() - 1;
        for i in 0..rows {
            let row = &logits[i * vocab..(i + 1) * vocab];
            let base = &reference[i * vocab..(i + 1) * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_z = row
                .iter()
                .map(|&v| ((v - max) as f64).exp())
                .sum::<f64>()
                .ln()
                + max as f64;
            nll += log_z - row[ids[i + 1] as usize] as f64;
            for (a, b) in row.iter().zip(base) {
                let d = (a - b).abs();
                diff_sum += d as f64;
                diff_max = diff_max.max(d);
            }
            same += usize::from(argmax(row) == argmax(base));
        }
        println!(
            "{:<7}  {:>10.4}  {:>20.5}  {:>12.4}  {:>17.2}%",
            kv_type.name(),
            (nll / rows as f64).exp(),
            diff_sum / (rows * vocab) as f64,
            diff_max,
            100.0 * same as f64 / rows as f64
        );
    }
    Ok(())
}

fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in xs.iter().enumerate() {
        if v > xs[best] {
            best = i;
        }
    }
    best
}
