//! Reasoning as a channel: text between `<think>` and `</think>` streams on `Reasoning`, the rest
//! on `Content`. The tags may arrive as single special tokens (SmolLM3, Qwen3), as text split
//! across several tokens, or not at all because the chat template already opened the block at the
//! end of the prompt. The tags themselves are never streamed.

use crate::tokenizer::Tokenizer;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Content,
    Reasoning,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Content => "content",
            Channel::Reasoning => "reasoning",
        }
    }
}

/// The think-tag token ids of a model whose vocabulary has them (the sign it can reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkTags {
    pub open: u32,
    pub close: u32,
}

impl ThinkTags {
    pub fn of(tokenizer: &Tokenizer) -> Option<Self> {
        Some(Self {
            open: tokenizer.token_id(OPEN)?,
            close: tokenizer.token_id(CLOSE)?,
        })
    }

    /// The channel a reply starts on: reasoning when the prompt ends inside an open think block
    /// (the template opened it for the model).
    pub fn starting_channel(&self, prompt: &[u32]) -> Channel {
        match prompt
            .iter()
            .rev()
            .find(|&&t| t == self.open || t == self.close)
        {
            Some(&t) if t == self.open => Channel::Reasoning,
            _ => Channel::Content,
        }
    }
}

/// Splits a stream of (token, text) into channel pieces.
#[derive(Debug, Clone)]
pub struct ChannelSplitter {
    tags: Option<ThinkTags>,
    channel: Channel,
    /// Text that may be the start of the tag that would switch channels.
    held: String,
}

impl ChannelSplitter {
    /// Without tags (a model that cannot reason) everything is content, untouched.
    pub fn new(tags: Option<ThinkTags>, start: Channel) -> Self {
        Self {
            tags,
            channel: start,
            held: String::new(),
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Which channel a token belongs to for usage counts: the tags count as reasoning.
    pub fn classify(&self, token: u32) -> Channel {
        match self.tags {
            Some(t) if token == t.open || token == t.close => Channel::Reasoning,
            _ => self.channel,
        }
    }

    /// Route the text one token produced. Returns the pieces to stream, in order.
    pub fn push(&mut self, token: u32, text: &str) -> Vec<(Channel, String)> {
        let mut out = Vec::new();
        let Some(tags) = self.tags else {
            if !text.is_empty() {
                out.push((Channel::Content, text.to_owned()));
            }
            return out;
        };
        if token == tags.open || token == tags.close {
            self.release(&mut out);
            self.channel = if token == tags.open {
                Channel::Reasoning
            } else {
                Channel::Content
            };
            return out;
        }
        self.held.push_str(text);
        loop {
            let tag = match self.channel {
                Channel::Content => OPEN,
                Channel::Reasoning => CLOSE,
            };
            if let Some(at) = self.held.find(tag) {
                let before: String = self.held.drain(..at).collect();
                self.held.drain(..tag.len());
                emit(&mut out, self.channel, before);
                self.channel = match self.channel {
                    Channel::Content => Channel::Reasoning,
                    Channel::Reasoning => Channel::Content,
                };
                continue;
            }
            // Hold back only a suffix that could still grow into the tag.
            let keep = partial_suffix(&self.held, tag);
            let ready: String = self.held.drain(..self.held.len() - keep).collect();
            emit(&mut out, self.channel, ready);
            return out;
        }
    }

    /// At the end: held-back text was not a tag after all.
    pub fn flush(&mut self) -> Vec<(Channel, String)> {
        let mut out = Vec::new();
        self.release(&mut out);
        out
    }

    fn release(&mut self, out: &mut Vec<(Channel, String)>) {
        let held = std::mem::take(&mut self.held);
        emit(out, self.channel, held);
    }
}

fn emit(out: &mut Vec<(Channel, String)>, channel: Channel, text: String) {
    if text.is_empty() {
        return;
    }
    match out.last_mut() {
        Some((c, t)) if *c == channel => t.push_str(&text),
        _ => out.push((channel, text)),
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag` (tags are ASCII, so
/// any such suffix starts on a character boundary).
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: ThinkTags = ThinkTags {
        open: 100,
        close: 101,
    };

    fn run(splitter: &mut ChannelSplitter, stream: &[(u32, &str)]) -> Vec<(Channel, String)> {
        let mut all = Vec::new();
        for &(tok, text) in stream {
            for (c, t) in splitter.push(tok, text) {
                emit(&mut all, c, t);
            }
        }
        for (c, t) in splitter.flush() {
            emit(&mut all, c, t);
        }
        all
    }

    use Channel::{Content as C, Reasoning as R};

    #[test]
    fn tags_as_special_tokens() {
        let mut s = ChannelSplitter::new(Some(TAGS), C);
        let out = run(
            &mut s,
            &[
                (100, ""),
                (1, "let me"),
                (2, " think"),
                (101, ""),
                (3, "Answer"),
            ],
        );
        assert_eq!(out, vec![(R, "let me think".into()), (C, "Answer".into())]);
    }

    #[test]
    fn tags_as_text_split_across_tokens() {
        let mut s = ChannelSplitter::new(Some(TAGS), C);
        let out = run(
            &mut s,
            &[
                (1, "<th"),
                (2, "ink>hm"),
                (3, "m</"),
                (4, "thi"),
                (5, "nk>\n\nOK"),
            ],
        );
        assert_eq!(out, vec![(R, "hmm".into()), (C, "\n\nOK".into())]);
    }

    #[test]
    fn whole_text_tags_inside_one_token() {
        let mut s = ChannelSplitter::new(Some(TAGS), C);
        let out = run(&mut s, &[(1, "<think>a</think>b")]);
        assert_eq!(out, vec![(R, "a".into()), (C, "b".into())]);
    }

    #[test]
    fn starts_inside_a_block_the_template_opened() {
        assert_eq!(TAGS.starting_channel(&[5, 100, 7]), R);
        assert_eq!(TAGS.starting_channel(&[5, 100, 7, 101, 8]), C);
        assert_eq!(TAGS.starting_channel(&[5, 6]), C);
        let mut s = ChannelSplitter::new(Some(TAGS), TAGS.starting_channel(&[100]));
        let out = run(&mut s, &[(1, "still thinking"), (101, ""), (2, "done")]);
        assert_eq!(out, vec![(R, "still thinking".into()), (C, "done".into())]);
    }

    #[test]
    fn unclosed_block_at_the_end_stays_reasoning_and_partial_tag_is_released() {
        let mut s = ChannelSplitter::new(Some(TAGS), R);
        let out = run(&mut s, &[(1, "thinking </thi")]);
        assert_eq!(out, vec![(R, "thinking </thi".into())]);
    }

    #[test]
    fn a_false_start_is_released_as_text() {
        let mut s = ChannelSplitter::new(Some(TAGS), C);
        let first = s.push(1, "a <th");
        assert_eq!(first, vec![(C, "a ".into())]);
        let second = s.push(2, "e end");
        assert_eq!(second, vec![(C, "<the end".into())]);
    }

    #[test]
    fn without_tags_everything_is_content() {
        let mut s = ChannelSplitter::new(None, C);
        let out = run(&mut s, &[(1, "<think>x</think>")]);
        assert_eq!(out, vec![(C, "<think>x</think>".into())]);
    }

    #[test]
    fn classify_counts_tags_as_reasoning() {
        let mut s = ChannelSplitter::new(Some(TAGS), C);
        assert_eq!(s.classify(100), R);
        s.push(100, "");
        assert_eq!(s.classify(5), R);
        assert_eq!(s.classify(101), R);
        s.push(101, "");
        assert_eq!(s.classify(5), C);
    }

    #[test]
    fn multibyte_text_around_partial_tags() {
        let mut s = ChannelSplitter::new(Some(TAGS), C);
        let out = run(&mut s, &[(1, "é<"), (2, "think>ü</thin"), (3, "k>ß")]);
        assert_eq!(out, vec![(C, "é".into()), (R, "ü".into()), (C, "ß".into())]);
    }
}
