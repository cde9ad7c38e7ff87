//! Building the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.

use super::{Tokenizer, TokenizerSpec};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;

pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let model = file.get_str("tokenizer.ggml.model")?.to_owned();
    let tokens: Vec<String> = file
        .get_str_array("tokenizer.ggml.tokens")?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let token_types = match file.get("tokenizer.ggml.token_type") {
        Some(_) => file.get_i32_array("tokenizer.ggml.token_type")?,
        None => Vec::new(),
    };
    let merges = match file.get("tokenizer.ggml.merges") {
        Some(_) => file
            .get_str_array("tokenizer.ggml.merges")?
            .into_iter()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let pre = file.get_opt_str("tokenizer.ggml.pre")?.map(str::to_owned);
    let id = |key: &str| file.get_opt_u32(key);
    let spec = TokenizerSpec {
        model,
        pre: pre.clone(),
        tokens,
        token_types,
        merges,
        bos_id: id("tokenizer.ggml.bos_token_id")?,
        eos_id: id("tokenizer.ggml.eos_token_id")?,
        eot_id: id("tokenizer.ggml.eot_token_id")?,
        unk_id: id("tokenizer.ggml.unknown_token_id")?,
        pad_id: id("tokenizer.ggml.padding_token_id")?,
        add_bos: match file.get_opt_bool("tokenizer.ggml.add_bos_token")? {
            Some(v) => v,
            None => TokenizerSpec::default_add_bos(pre.as_deref()),
        },
    };
    Tokenizer::from_spec(spec).map_err(|e| Error::model_load(format!("tokenizer: {}", e.message)))
}
