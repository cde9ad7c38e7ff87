//! What the examples share: which model file to run.

/// The model file: `arg` when given, else `$SMOLRT_TEST_MODEL`, else the default model's path
/// under `models/`.
pub fn model_path(arg: Option<String>) -> String {
    arg.or_else(|| std::env::var("SMOLRT_TEST_MODEL").ok())
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into())
}
