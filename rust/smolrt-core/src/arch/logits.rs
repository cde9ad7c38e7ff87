//! What a forward pass returns: every batch item's logits rows in one buffer that the caller can
//! keep and hand back to the next forward.
//!
//! A batched decode step's logits are megabytes (8 rows of a 49,152-token vocabulary: 1.5 MB).
//! Returned as one fresh `Vec` per item, every step zeroed a new output buffer and then copied it
//! out row by row, on the stepping thread while the other core waited for the next matmul.

/// Logits of a batch: item `i` has one `vocab`-wide row (its last token) or one per token (an
/// item that asked for all of them), row-major.
#[derive(Debug, Default, Clone)]
pub struct Logits {
    values: Vec<f32>,
    vocab: usize,
    /// Item `i`'s rows are `ends[i - 1]..ends[i]` (from 0 for the first item).
    ends: Vec<usize>,
}

impl Logits {
    /// Number of batch items.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let first = if i == 0 { 0 } else { self.ends[i - 1] };
        first * self.vocab..self.ends[i] * self.vocab
    }

    /// Item `i`'s rows, `[rows][vocab]`. Panics if `i >= len()`.
    pub fn item(&self, i: usize) -> &[f32] {
        &self.values[self.range(i)]
    }

    /// Item `i`'s rows, writable (samplers apply penalties in place). Panics if `i >= len()`.
    pub fn item_mut(&mut self, i: usize) -> &mut [f32] {
        let range = self.range(i);
        &mut self.values[range]
    }

    /// Every item's rows, writable, in item order: separate slices, so each can go to a
    /// different thread.
    pub fn items_mut(&mut self) -> Vec<&mut [f32]> {
        let mut rest = self.values.as_mut_slice();
        let mut start = 0;
        let mut items = Vec::with_capacity(self.ends.len());
        for &end in &self.ends {
            let (item, tail) = std::mem::take(&mut rest).split_at_mut((end - start) * self.vocab);
            items.push(item);
            rest = tail;
            start = end;
        }
        items
    }

    /// Item `i`'s rows as an owned vector.
    pub fn to_item_vec(&self, i: usize) -> Vec<f32> {
        self.item(i).to_vec()
    }

    /// Empties the batch but keeps the buffer, and gives it to a forward to fill: the matmul
    /// writes every value, and a buffer that already has the length is not written twice.
    pub(crate) fn buffer_for(&mut self, vocab: usize, rows_per_item: &[usize]) -> &mut Vec<f32> {
        self.vocab = vocab;
        self.ends.clear();
        let mut end = 0;
        for &rows in rows_per_item {
            end += rows;
            self.ends.push(end);
        }
        &mut self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_their_rows() {
        let mut logits = Logits::default();
        let buf = logits.buffer_for(3, &[1, 2, 1]);
        buf.clear();
        buf.extend((0..12).map(|v| v as f32));
        assert_eq!(logits.len(), 3);
        assert_eq!(logits.item(0), &[0.0, 1.0, 2.0]);
        assert_eq!(logits.item(1), &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        logits.item_mut(2)[0] = -1.0;
        let items = logits.items_mut();
        assert_eq!(items.iter().map(|r| r.len()).collect::<Vec<_>>(), [3, 6, 3]);
        assert_eq!(items[2][0], -1.0);
        assert_eq!(logits.to_item_vec(2), vec![-1.0, 10.0, 11.0]);
        // reused for a smaller batch: the old items are gone
        logits.buffer_for(3, &[1]).truncate(3);
        assert_eq!(logits.len(), 1);
        assert_eq!(logits.item(0), &[0.0, 1.0, 2.0]);
    }
}
