//! Byte-level BPE: merge ranks over interned symbol ids, the rank-ordered merge loop and a
//! per-word cache.
//!
//! Symbols are interned strings of the byte-level alphabet. Vocab entries keep their token id;
//! merge halves or results that are not vocab entries (malformed but legal files) get ids past
//! the vocab so the merge loop still follows the file exactly. A final symbol that is not a
//! vocab entry falls back to single-character tokens, as llama.cpp does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use super::byte_level::{byte_to_char, encode_bytes};
use crate::{Error, Result};

/// Words cached before the cache is reset; bounds memory on adversarial input.
const CACHE_CAPACITY: usize = 1 << 15;

/// Cheap multiplicative hash for the (u32, u32) merge keys; SipHash dominates BPE time otherwise.
#[derive(Default)]
pub struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u8(b);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type PairMap<V> = HashMap<(u32, u32), V, BuildHasherDefault<PairHasher>>;

#[derive(Clone, Copy)]
struct Merge {
    rank: u32,
    result: u32,
}

pub struct Bpe {
    merges: PairMap<Merge>,
    /// Interned id of each raw byte's stand-in character (`None`: appears in no vocab entry or
    /// merge, so it can never merge).
    byte_symbol: [Option<u32>; 256],
    /// Vocab ids of single ASCII characters, for the fallback of unmergeable symbols.
    ascii_token: [Option<u32>; 128],
    vocab_size: u32,
    ignore_merges: bool,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl Bpe {
    /// `token_to_id` must hold every vocab string. Merges are "left right" lines, highest
    /// priority first.
    pub fn new(
        token_to_id: &HashMap<String, u32>,
        vocab_size: u32,
        merges: &[String],
        ignore_merges: bool,
    ) -> Result<Self> {
        let mut extra: HashMap<String, u32> = HashMap::new();
        let mut intern = |s: &str| -> u32 {
            if let Some(&id) = token_to_id.get(s) {
                return id;
            }
            let next = vocab_size.saturating_add(extra.len() as u32);
            *extra.entry(s.to_owned()).or_insert(next)
        };

        let mut merge_map: PairMap<Merge> = PairMap::default();
        merge_map.reserve(merges.len());
        for (rank, line) in merges.iter().enumerate() {
            // Split at the first space after the first character: a left half may itself
            // start with a space in non-byte-level vocabs.
            let split = line
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i)
                .ok_or_else(|| {
                    Error::model_load(format!("tokenizer merge {rank} has no separator: {line:?}"))
                })?;
            let (left, right) = (&line[..split], &line[split + 1..]);
            if right.is_empty() {
                return Err(Error::model_load(format!(
                    "tokenizer merge {rank} has an empty right half: {line:?}"
                )));
            }
            let rank =
                u32::try_from(rank).map_err(|_| Error::model_load("too many tokenizer merges"))?;
            let key = (intern(left), intern(right));
            let joined = format!("{left}{right}");
            let result = intern(&joined);
            // The first occurrence of a pair wins, like llama.cpp's map insert.
            merge_map.entry(key).or_insert(Merge { rank, result });
        }

        let mut byte_symbol = [None; 256];
        for b in 0..=255u8 {
            let mut buf = [0u8; 4];
            let s = byte_to_char(b).encode_utf8(&mut buf);
            byte_symbol[usize::from(b)] = token_to_id
                .get(&*s)
                .copied()
                .or_else(|| extra.get(&*s).copied());
        }
        let mut ascii_token = [None; 128];
        for (c, slot) in ascii_token.iter_mut().enumerate() {
            let s = [c as u8];
            if let Ok(s) = std::str::from_utf8(&s) {
                *slot = token_to_id.get(s).copied();
            }
        }

        Ok(Self {
            merges: merge_map,
            byte_symbol,
            ascii_token,
            vocab_size,
            ignore_merges,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Token ids for one pre-tokenized word (raw text, not yet byte-level mapped).
    pub fn encode_word(&self, word: &str, token_to_id: &HashMap<String, u32>, out: &mut Vec<u32>) {
        if let Ok(cache) = self.cache.lock() {
            if let Some(ids) = cache.get(word) {
                out.extend_from_slice(ids);
                return;
            }
        }
        let mut ids = Vec::new();
        self.merge_word(word.as_bytes(), token_to_id, &mut ids);
        out.extend_from_slice(&ids);
        // A poisoned lock only means another thread panicked mid-insert; skipping the cache
        // is always correct.
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(word.to_owned(), ids);
        }
    }

    fn merge_word(&self, bytes: &[u8], token_to_id: &HashMap<String, u32>, out: &mut Vec<u32>) {
        if bytes.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(&id) = token_to_id.get(&encode_bytes(bytes)) {
                out.push(id);
                return;
            }
        }

        // One symbol per byte: each byte is one character of the byte-level alphabet.
        let n = bytes.len();
        let mut sym: Vec<Symbol> = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| Symbol {
                id: self.byte_symbol[usize::from(b)],
                start: i,
                len: 1,
                prev: i.checked_sub(1),
                next: if i + 1 < n { Some(i + 1) } else { None },
            })
            .collect();

        let mut queue: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        for i in 1..n {
            self.push_candidate(&sym, i - 1, i, &mut queue);
        }

        while let Some(Reverse(c)) = queue.pop() {
            let (l, r) = (c.left, c.right);
            // Stale entry: one side has merged since. Symbols never move, so unchanged ids at
            // both positions mean the pair is still adjacent and unchanged.
            if sym[l].len == 0
                || sym[r].len == 0
                || sym[l].id != Some(c.left_id)
                || sym[r].id != Some(c.right_id)
            {
                continue;
            }
            sym[l].id = Some(c.result);
            sym[l].len += sym[r].len;
            sym[l].next = sym[r].next;
            sym[r].len = 0;
            if let Some(nx) = sym[r].next {
                sym[nx].prev = Some(l);
            }
            if let Some(p) = sym[l].prev {
                self.push_candidate(&sym, p, l, &mut queue);
            }
            if let Some(nx) = sym[l].next {
                self.push_candidate(&sym, l, nx, &mut queue);
            }
        }

        let mut i = Some(0);
        while let Some(idx) = i {
            let s = &sym[idx];
            match s.id {
                Some(id) if id < self.vocab_size => out.push(id),
                _ => {
                    // Not a vocab entry: llama.cpp looks up each byte of the byte-level text as
                    // a one-byte token; only ASCII stand-ins can match.
                    for &b in &bytes[s.start..s.start + s.len] {
                        let c = byte_to_char(b);
                        if c.is_ascii() {
                            if let Some(id) = self.ascii_token[c as usize] {
                                out.push(id);
                            }
                        }
                    }
                }
            }
            i = s.next;
        }
    }

    fn push_candidate(
        &self,
        sym: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Reverse<Candidate>>,
    ) {
        let (Some(left_id), Some(right_id)) = (sym[left].id, sym[right].id) else {
            return;
        };
        if let Some(m) = self.merges.get(&(left_id, right_id)) {
            queue.push(Reverse(Candidate {
                rank: m.rank,
                left,
                right,
                left_id,
                right_id,
                result: m.result,
            }));
        }
    }
}

struct Symbol {
    id: Option<u32>,
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Ordered by rank, then leftmost position: the merge llama.cpp (and HF) applies next.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
    result: u32,
}
