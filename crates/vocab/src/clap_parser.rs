//! Command-line flags of the vocabulary's types: parsed by the type's own `FromStr` (the
//! parser YAML uses too), and their choices listed by `--help`.

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

use crate::Word;

/// The clap value parser of a [`Word`] (every word type implements
/// `clap::builder::ValueParserFactory` with it, so `#[arg(long)] device: Device` needs nothing
/// more).
#[derive(Debug)]
pub struct WordParser<W>(PhantomData<fn() -> W>);

impl<W> Default for WordParser<W> {
    fn default() -> Self {
        WordParser(PhantomData)
    }
}

impl<W> Clone for WordParser<W> {
    fn clone(&self) -> Self {
        WordParser(PhantomData)
    }
}

impl<W: Word> TypedValueParser for WordParser<W> {
    type Value = W;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<W, clap::Error> {
        let flag = arg.map_or_else(|| "...".to_string(), |a| a.to_string());
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(
                ErrorKind::InvalidUtf8,
                format!("{flag}: the value is not UTF-8\n"),
            )
            .with_cmd(cmd)
        })?;
        text.parse::<W>().map_err(|e| {
            clap::Error::raw(
                ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{flag}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            W::CHOICES
                .iter()
                .map(|(name, help)| PossibleValue::new(*name).help(*help)),
        ))
    }
}
