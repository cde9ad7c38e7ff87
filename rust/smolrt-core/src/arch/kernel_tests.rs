//! The integer kernels against the gguf package's numpy (de)quantizers (an implementation
//! independent of ours; see tools/make_kernel_fixture.py), on random blocks and edge values.

use half::f16;

use super::act_blocks::{quantize_row_k_into, quantize_rows, ActBlock, QK, QK_K};
use super::iq4_xs::{Iq4XsMatrix, Iq4XsPanel};
use super::isa;
use super::panels::{PanelBlock, PanelMatrix, PANEL};
use super::q2_k::{Q2KMatrix, Q2KPanel};
use super::q3_k::{Q3KMatrix, Q3KPanel};
use super::q4_0::{Iq4NlMatrix, Iq4NlPanel, Q4_0Matrix, Q4_0Panel};
use super::q4_1::Q4_1Panel;
use super::q4_1::{self, Q4_1Matrix};
use super::q4_k::{Q4KMatrix, Q4KPanel};
use super::q5::{Q5_0Matrix, Q5_0Panel, Q5_1Matrix, Q5_1Panel};
use super::q5_k::{Q5KMatrix, Q5KPanel};
use super::q6_k::{Q6KMatrix, Q6KPanel};
use super::q8_0::{Q8_0Matrix, Q8_0Panel};
use super::weight_arena::WeightArena;

const FIXTURE: &str = include_str!("testdata/kernel_blocks.txt");

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_f32s<'a>(words: impl Iterator<Item = &'a str>) -> Vec<f32> {
    words
        .map(|w| f32::from_bits(u32::from_str_radix(w, 16).unwrap()))
        .collect()
}

/// (block bytes, gguf's dequantized values) for every fixture line of `kind`.
fn blocks(kind: &str) -> Vec<(Vec<u8>, Vec<f32>)> {
    FIXTURE
        .lines()
        .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' '))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let bytes = hex_bytes(words.next().unwrap());
            (bytes, hex_f32s(words))
        })
        .collect()
}

/// (activation values, gguf's Q8_0 block of them).
fn activations() -> Vec<(Vec<f32>, Vec<u8>)> {
    FIXTURE
        .lines()
        .filter_map(|l| l.strip_prefix("act "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            (hex_f32s(words[..QK].iter().copied()), hex_bytes(words[QK]))
        })
        .collect()
}

fn check_dequantize(kind: &str, dequantize: impl Fn(&[u8]) -> [f32; QK]) {
    let fixture = blocks(kind);
    assert!(
        fixture.len() > 40,
        "fixture has {} {kind} blocks",
        fixture.len()
    );
    for (bytes, want) in &fixture {
        let got = dequantize(bytes);
        let (g, w): (Vec<u32>, Vec<u32>) = (
            got.iter().map(|v| v.to_bits()).collect(),
            want.iter().map(|v| v.to_bits()).collect(),
        );
        assert_eq!(g, w, "{kind} block {}", hex(bytes));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn dequantizers_match_gguf_bit_for_bit() {
    check_dequantize("q4_1", |b| q4_1::dequantize_block(b.try_into().unwrap()));
    check_dequantize("q8_0", |b| {
        let f = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        std::array::from_fn(|j| b[2 + j] as i8 as f32 * f)
    });
    // and the panels hold each row's values as GGUF does
    check_lanes::<Q4_1Panel>("q4_1");
    check_lanes::<Q8_0Panel>("q8_0");
    check_lanes::<Q4_0Panel>("q4_0");
    check_lanes::<Q5_0Panel>("q5_0");
    check_lanes::<Q5_1Panel>("q5_1");
    check_lanes::<Q4KPanel>("q4_k");
    check_lanes::<Q6KPanel>("q6_k");
    check_lanes::<Q5KPanel>("q5_k");
    check_lanes::<Q3KPanel>("q3_k");
    check_lanes::<Q2KPanel>("q2_k");
    check_lanes::<Iq4NlPanel>("iq4_nl");
    check_lanes::<Iq4XsPanel>("iq4_xs");
}

/// Packs fixture blocks into panels (padding included) and reads every row back.
fn check_lanes<P: PanelBlock>(kind: &str) {
    let (n_out, bpr) = (21, 2);
    let n_in = bpr * QK * P::BLOCKS;
    let (bytes, weights, _) = fixture_matrix(kind, n_out, bpr);
    let m = PanelMatrix::<P>::from_bytes(&mut WeightArena::new(), &bytes, n_out, n_in).unwrap();
    let mut row = vec![0f32; n_in];
    for r in 0..n_out {
        assert!(m.dequantize_row(r, &mut row));
        let want = &weights[r * n_in..(r + 1) * n_in];
        assert_eq!(
            row.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{kind} row {r}"
        );
    }
    assert!(!m.dequantize_row(n_out, &mut row), "row past the end");
    assert!(!m.dequantize_row(0, &mut row[1..]), "short output");
    assert!(n_out % PANEL != 0, "the test wants a padded panel");
}

/// gguf rounds half away from zero (ggml's reference C), we round half to even (ggml's x86
/// path): the quants may differ only where x/d sits exactly on a .5 tie.
#[test]
fn activation_quantizer_matches_gguf_q8_0() {
    let acts = activations();
    assert!(acts.len() >= 30);
    for (x, want) in &acts {
        let got = &quantize_rows(x, QK)[0];
        let d = f16::from_le_bytes([want[0], want[1]]);
        assert_eq!(got.d.to_bits(), d.to_f32().to_bits(), "scale of {x:?}");
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let id = if amax == 0.0 {
            0.0
        } else {
            1.0 / (amax / 127.0)
        };
        for j in 0..QK {
            let (g, w) = (got.qs[j], want[2 + j] as i8);
            let tie = ((x[j] * id).abs().fract() - 0.5).abs() < 1e-6;
            assert!(
                g == w || (tie && (g as i32 - w as i32).abs() == 1),
                "{j}: {g} vs {w}"
            );
        }
        let sum: i32 = got.qs.iter().map(|&q| q as i32).sum();
        assert_eq!(got.s, f16::from_f32(sum as f32 * (amax / 127.0)).to_f32());
    }
}

/// `n_out` rows of `bpr` blocks (super-blocks, for a K-quant) cycled from the fixture: (GGUF
/// bytes, gguf's dequantized values, a bound on each block's min as f64: the min itself, or for
/// a K-quant dmin times the largest 6-bit min).
fn fixture_matrix(kind: &str, n_out: usize, bpr: usize) -> (Vec<u8>, Vec<f32>, Vec<f64>) {
    let fixture = blocks(kind);
    let mut bytes = Vec::new();
    let mut weights = Vec::new();
    let mut mins = Vec::new();
    for i in 0..n_out * bpr {
        let (b, v) = &fixture[(i * 7) % fixture.len()];
        bytes.extend_from_slice(b);
        weights.extend_from_slice(v);
        // the largest min a block can subtract: Q2_K's dmin (at its end) times 15, the other
        // K-quants' (after d) times 63, a Q4_1 / Q5_1 block's own
        let f16_at = |at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f32() as f64;
        mins.push(match (kind, v.len() > QK) {
            ("q2_k", _) => f16_at(82) * 15.0,
            (_, true) => f16_at(2) * 63.0,
            (_, false) => f16_at(2),
        });
    }
    (bytes, weights, mins)
}

/// The fixture's activation rows, `bpr` blocks each; at least six rows, the fixture's blocks
/// repeated (scaled, so the repeats quantize differently) where it has too few.
fn fixture_activations(bpr: usize) -> (Vec<f32>, usize) {
    let acts = activations();
    let rows = (acts.len() / bpr).max(6);
    let x = (0..rows * bpr)
        .flat_map(|i| {
            let scale = (1 + i / acts.len()) as f32;
            acts[i % acts.len()].0.iter().map(move |v| v * scale)
        })
        .collect();
    (x, rows)
}

/// Checks `matmul` (GGUF bytes, n_out, n_in, x, rows) on `n_out` rows of `bpr` fixture blocks
/// against f64 dot products of gguf's dequantized weights with the dequantized activation
/// blocks; then that a row alone, or any leading part of the batch, gives the same bits.
fn check_matmul(
    kind: &str,
    has_min: bool,
    blocks_per_fixture: usize,
    quantize_row: fn(&[f32], &mut [ActBlock]),
    matmul: impl Fn(&[u8], usize, usize, &[f32], usize) -> Vec<f32>,
) {
    let n_out = 13;
    // 3 blocks of 32 a row, or one K-quant super-block (8 blocks)
    let fixture_bpr = 3usize.div_ceil(blocks_per_fixture);
    let bpr = fixture_bpr * blocks_per_fixture;
    let n_in = bpr * QK;
    let (bytes, weights, mins) = fixture_matrix(kind, n_out, fixture_bpr);
    let (x, rows) = fixture_activations(bpr);
    let y = matmul(&bytes, n_out, n_in, &x, rows);
    // the activations as the kernels get them, dequantized exactly in f64 below
    let mut qa = vec![ActBlock::default(); rows * bpr];
    for (row, dst) in x.chunks_exact(n_in).zip(qa.chunks_exact_mut(bpr)) {
        quantize_row(row, dst);
    }
    for r in 0..rows {
        for o in 0..n_out {
            let (mut want, mut bound) = (0f64, 0f64);
            for b in 0..bpr {
                let a = &qa[r * bpr + b];
                let w = &weights[(o * bpr + b) * QK..(o * bpr + b + 1) * QK];
                let mut qsum = 0f64;
                for (&wj, &qj) in w.iter().zip(&a.qs) {
                    let term = wj as f64 * (a.d as f64 * qj as f64);
                    want += term;
                    bound += term.abs() * 1e-6;
                    qsum += qj as f64;
                }
                if has_min {
                    // the kernel uses s = f16(d·Σq): relative rounding 2^-11 times the min term
                    let min = mins[o * fixture_bpr + b / blocks_per_fixture];
                    bound += (min * a.d as f64 * qsum).abs() * 1e-3;
                }
            }
            let got = y[r * n_out + o] as f64;
            assert!(
                (got - want).abs() <= bound + 1e-30,
                "{kind} ({r},{o}): {got} vs {want}, bound {bound}"
            );
        }
        // batch invariance: a row alone gives the bits it got inside the batch
        let alone = matmul(&bytes, n_out, n_in, &x[r * n_in..(r + 1) * n_in], 1);
        assert_eq!(alone, &y[r * n_out..(r + 1) * n_out], "{kind} row {r}");
    }
    for split in [2, 5, 6].into_iter().filter(|&s| s <= rows) {
        let part = matmul(&bytes, n_out, n_in, &x[..split * n_in], split);
        assert_eq!(part, &y[..split * n_out], "{kind} first {split} rows");
    }
}

fn check_panel_matmul<P: PanelBlock<Act = ActBlock>>(kind: &str, has_min: bool) {
    for isa in isa::available() {
        check_matmul(
            kind,
            has_min,
            P::BLOCKS,
            P::quantize_row,
            |bytes, n_out, n_in, x, rows| {
                let m = PanelMatrix::<P>::from_bytes(&mut WeightArena::new(), bytes, n_out, n_in)
                    .unwrap();
                assert_eq!((m.n_out(), m.n_in()), (n_out, n_in));
                m.matmul_with(isa, x, rows)
            },
        );
    }
}

#[test]
fn q4_1_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q4_1Panel>("q4_1", true);
}

#[test]
fn q8_0_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q8_0Panel>("q8_0", false);
}

#[test]
fn q4_0_and_q5_matmuls_match_gguf_dequantized_reference() {
    check_panel_matmul::<Q4_0Panel>("q4_0", false);
    check_panel_matmul::<Q5_0Panel>("q5_0", false);
    check_panel_matmul::<Q5_1Panel>("q5_1", true);
}

#[test]
fn q4_k_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q4KPanel>("q4_k", true);
}

#[test]
fn q5_k_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q5KPanel>("q5_k", true);
}

#[test]
fn q6_k_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q6KPanel>("q6_k", false);
}

#[test]
fn q3_k_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q3KPanel>("q3_k", false);
}

#[test]
fn q2_k_matmul_matches_gguf_dequantized_reference() {
    check_panel_matmul::<Q2KPanel>("q2_k", true);
}

#[test]
fn iq4_matmuls_match_gguf_dequantized_reference() {
    check_panel_matmul::<Iq4NlPanel>("iq4_nl", false);
    check_panel_matmul::<Iq4XsPanel>("iq4_xs", false);
}

/// Every instruction set this CPU has gives the scalar kernel's bits, for every batch size the
/// driver splits differently (kernel calls of 1..4 rows, several row tiles) and a padded panel;
/// and the first row alone, which takes a driver of its own, gives the bits it got in each
/// batch, over several panel groups.
fn check_isas_agree<P: PanelBlock>(kind: &str) {
    let available = isa::available();
    assert_eq!(available[0], isa::Isa::Scalar);
    for (n_out, fixture_bpr) in [(13, 3), (48, 5)] {
        let bpr = fixture_bpr * P::BLOCKS;
        let n_in = bpr * QK;
        let (bytes, _, _) = fixture_matrix(kind, n_out, fixture_bpr);
        let m = PanelMatrix::<P>::from_bytes(&mut WeightArena::new(), &bytes, n_out, n_in).unwrap();
        let (x, rows) = fixture_activations(bpr);
        // more rows than the fixture has: repeat it, scaled so the repeats quantize differently
        let x: Vec<f32> = (0..3)
            .flat_map(|k| x.iter().map(move |v| v * (k + 1) as f32))
            .collect();
        for rows in [1, 2, 3, 4, 5, 7, 9, 17, 3 * rows] {
            let x = &x[..rows * n_in];
            let want = m.matmul_with(isa::Isa::Scalar, x, rows);
            for &isa in &available[1..] {
                let got = m.matmul_with(isa, x, rows);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{kind} {isa:?}, {n_out}x{n_in}, {rows} rows"
                );
            }
            for &isa in &available {
                let alone = m.matmul_with(isa, &x[..n_in], 1);
                assert_eq!(
                    alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want[..n_out]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                    "{kind} {isa:?}, {n_out}x{n_in}, row 0 alone against {rows} rows"
                );
            }
        }
    }
}

#[test]
fn kernels_agree_bit_for_bit_across_instruction_sets() {
    check_isas_agree::<Q4_1Panel>("q4_1");
    check_isas_agree::<Q8_0Panel>("q8_0");
    check_isas_agree::<Q4_0Panel>("q4_0");
    check_isas_agree::<Q5_0Panel>("q5_0");
    check_isas_agree::<Q5_1Panel>("q5_1");
    check_isas_agree::<Q4KPanel>("q4_k");
    check_isas_agree::<Q6KPanel>("q6_k");
    check_isas_agree::<Q5KPanel>("q5_k");
    check_isas_agree::<Q3KPanel>("q3_k");
    check_isas_agree::<Q2KPanel>("q2_k");
    check_isas_agree::<Iq4NlPanel>("iq4_nl");
    check_isas_agree::<Iq4XsPanel>("iq4_xs");
}

#[test]
fn rejects_wrong_sizes() {
    assert!(Q4_1Matrix::from_bytes(&mut WeightArena::new(), &[0; 40], 1, 48).is_err());
    assert!(Q4_1Matrix::from_bytes(&mut WeightArena::new(), &[0; 39], 1, 64).is_err());
    assert!(Q8_0Matrix::from_bytes(&mut WeightArena::new(), &[0; 67], 1, 64).is_err());
    assert!(Q8_0Matrix::from_bytes(&mut WeightArena::new(), &[0; 68], 1, 64).is_ok());
    assert!(Q4_0Matrix::from_bytes(&mut WeightArena::new(), &[0; 35], 1, 64).is_err());
    assert!(Q4_0Matrix::from_bytes(&mut WeightArena::new(), &[0; 36], 1, 64).is_ok());
    assert!(Q5_0Matrix::from_bytes(&mut WeightArena::new(), &[0; 44], 1, 48).is_err());
    assert!(Q5_0Matrix::from_bytes(&mut WeightArena::new(), &[0; 44], 1, 64).is_ok());
    assert!(Q5_1Matrix::from_bytes(&mut WeightArena::new(), &[0; 47], 1, 64).is_err());
    assert!(Q5_1Matrix::from_bytes(&mut WeightArena::new(), &[0; 48], 1, 64).is_ok());
    // a K-quant row is whole 256-value super-blocks
    assert!(Q4KMatrix::from_bytes(&mut WeightArena::new(), &[0; 144], 1, 128).is_err());
    assert!(Q4KMatrix::from_bytes(&mut WeightArena::new(), &[0; 143], 1, 256).is_err());
    assert!(Q4KMatrix::from_bytes(&mut WeightArena::new(), &[0; 144], 1, 256).is_ok());
    assert!(Q5KMatrix::from_bytes(&mut WeightArena::new(), &[0; 175], 1, 256).is_err());
    assert!(Q5KMatrix::from_bytes(&mut WeightArena::new(), &[0; 176], 1, 256).is_ok());
    assert!(Q6KMatrix::from_bytes(&mut WeightArena::new(), &[0; 209], 1, 256).is_err());
    assert!(Q6KMatrix::from_bytes(&mut WeightArena::new(), &[0; 210], 1, 256).is_ok());
    assert!(Q3KMatrix::from_bytes(&mut WeightArena::new(), &[0; 109], 1, 256).is_err());
    assert!(Q3KMatrix::from_bytes(&mut WeightArena::new(), &[0; 110], 1, 256).is_ok());
    assert!(Q2KMatrix::from_bytes(&mut WeightArena::new(), &[0; 83], 1, 256).is_err());
    assert!(Q2KMatrix::from_bytes(&mut WeightArena::new(), &[0; 84], 1, 256).is_ok());
    assert!(Iq4NlMatrix::from_bytes(&mut WeightArena::new(), &[0; 17], 1, 32).is_err());
    assert!(Iq4NlMatrix::from_bytes(&mut WeightArena::new(), &[0; 18], 1, 32).is_ok());
    assert!(Iq4XsMatrix::from_bytes(&mut WeightArena::new(), &[0; 135], 1, 256).is_err());
    assert!(Iq4XsMatrix::from_bytes(&mut WeightArena::new(), &[0; 136], 1, 256).is_ok());
}

/// ggml's quantize_row_q8_K: the largest magnitude at −127, a shared f32 scale per 256 values.
#[test]
fn k_activation_quantizer_follows_ggml_q8_k() {
    let acts = activations();
    let x: Vec<f32> = acts
        .iter()
        .take(QK_K / QK)
        .flat_map(|(v, _)| v.clone())
        .collect();
    let mut out = vec![ActBlock::default(); QK_K / QK];
    quantize_row_k_into(&x, &mut out);
    let (at, max) =
        x.iter().enumerate().fold(
            (0, 0f32),
            |(i, m), (j, &v)| if v.abs() > m.abs() { (j, v) } else { (i, m) },
        );
    let d = 1.0 / (-127.0 / max);
    for (b, block) in out.iter().enumerate() {
        assert_eq!(block.d.to_bits(), d.to_bits());
        assert_eq!(block.sum, block.qs.iter().map(|&q| q as i32).sum::<i32>());
        let lower: i32 = block.qs[..QK / 2].iter().map(|&q| q as i32).sum();
        assert_eq!(block.sum_lo, lower);
        assert_eq!(block.s, block.sum as f32);
        for (j, &q) in block.qs.iter().enumerate() {
            let v = x[b * QK + j];
            assert!(
                (q as f32 * d - v).abs() <= d.abs() * 0.5 + 1e-12,
                "{v} as {q}"
            );
        }
    }
    assert_eq!(out[at / QK].qs[at % QK], -127);
    let mut zero = vec![ActBlock::default(); QK_K / QK];
    quantize_row_k_into(&[0.0; QK_K], &mut zero);
    assert!(zero
        .iter()
        .all(|b| b.d == 0.0 && b.sum == 0 && b.qs == [0; QK]));
}
