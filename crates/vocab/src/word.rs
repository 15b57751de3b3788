//! What every word of the vocabulary has: one spelling per value ([`std::fmt::Display`]), one
//! parser ([`std::str::FromStr`], which serde and the command line go through too), and the
//! list of choices a user is shown.

use std::fmt::Display;
use std::str::FromStr;

/// A word the user writes (in YAML, on the command line) and every crate reads as one type.
pub trait Word: FromStr<Err = VocabError> + Display + Clone + Send + Sync + 'static {
    /// What the word names, for messages ("device", "data set").
    const WHAT: &'static str;
    /// The spellings a user may write, each with one line saying what it means; what
    /// `--help` lists.
    const CHOICES: &'static [(&'static str, &'static str)];
}

/// A spelling that names no value: says what was given and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`, expected {expected}")]
pub struct VocabError {
    /// What the word names ("device").
    pub what: &'static str,
    /// What was written.
    pub given: String,
    /// The choices, in words.
    pub expected: String,
}

impl VocabError {
    /// The error for `given`, listing `W`'s choices.
    pub fn unknown<W: Word>(given: &str) -> Self {
        let names: Vec<String> = W::CHOICES.iter().map(|(n, _)| format!("`{n}`")).collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "nothing".into(),
        };
        VocabError {
            what: W::WHAT,
            given: given.to_string(),
            expected,
        }
    }
}

/// The value of a closed set whose name (any letter case) is `given`.
pub(crate) fn parse_among<W: Word + Copy>(
    given: &str,
    values: &[W],
    name: impl Fn(W) -> &'static str,
) -> Result<W, VocabError> {
    values
        .iter()
        .copied()
        .find(|v| name(*v).eq_ignore_ascii_case(given.trim()))
        .ok_or_else(|| VocabError::unknown::<W>(given))
}

/// Serialises a word as its spelling and reads it back through its `FromStr`: YAML, JSON and
/// the command line accept exactly the same text.
macro_rules! serde_as_word {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "clap")]
        impl clap::builder::ValueParserFactory for $t {
            type Parser = crate::WordParser<$t>;
            fn value_parser() -> Self::Parser {
                crate::WordParser::default()
            }
        }
    };
}
pub(crate) use serde_as_word;
