//! Prints every word of the vocabulary with its choices, then parses the arguments given (e.g.
//! `cargo run -p allconv-vocab --example choices -- cuda:2 cifar100 tf32`) as each type in turn,
//! showing what each spelling means or why it is refused.

use allconv_vocab::{Dataset, DatasetKind, Device, LabelSet, Precision, Word};

fn list<W: Word>() {
    println!("{}:", W::WHAT);
    for (name, help) in W::CHOICES {
        println!("  {name:<16} {help}");
    }
}

fn try_parse<W: Word + std::fmt::Debug>(text: &str) {
    match text.parse::<W>() {
        Ok(value) => println!("  as {}: {value:?}, written `{value}`", W::WHAT),
        Err(e) => println!("  as {}: {e}", W::WHAT),
    }
}

fn main() {
    list::<Dataset>();
    list::<LabelSet>();
    list::<DatasetKind>();
    list::<Device>();
    list::<Precision>();
    for text in std::env::args().skip(1) {
        println!("`{text}`:");
        try_parse::<Dataset>(&text);
        try_parse::<DatasetKind>(&text);
        try_parse::<Device>(&text);
        try_parse::<Precision>(&text);
    }
}
