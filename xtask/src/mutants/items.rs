//! A mutant's item: the function (or constant, or static) of the model's source it is made in,
//! so that a verdict outlives changes to the rest of its file.
//!
//! A mutant is named by its place (`path:line:col: description`), and a change anywhere in the
//! file above it moves it. A verdict is carried from an older commit to a newer one when the
//! item the mutant is in is the same text at both (its attributes and doc comments included):
//! the mutant is then the same change to the same code, and its new name is the old one moved by
//! as many lines as the item moved. This is the assumption cargo-mutants' own `--in-diff` makes:
//! that a mutant's fate is decided by the code it is in and the tests, not by the rest of the
//! model. The tests only grow between runs here (an older verdict was judged by fewer tests), so
//! a carried "caught" stays caught; what a changed item's mutants do must be run again.

use proc_macro2::Span;
use syn::spanned::Spanned as _;

/// An item's place in its file: 1-based lines, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub first: usize,
    pub last: usize,
}

impl Place {
    fn of(span: Span) -> Place {
        Place { first: span.start().line, last: span.end().line }
    }

    fn holds(self, line: usize) -> bool {
        (self.first..=self.last).contains(&line)
    }

    /// The item's lines of `text`.
    fn lines(self, text: &str) -> Vec<&str> {
        text.lines().skip(self.first - 1).take(self.last + 1 - self.first).collect()
    }
}

/// A file's text and the places of its items.
#[derive(Debug)]
pub struct Source {
    text: String,
    places: Vec<Place>,
}

impl Source {
    /// `None` when `text` is not Rust that syn reads.
    pub fn parse(text: String) -> Option<Source> {
        let places = places(&text)?;
        Some(Source { text, places })
    }
}

/// The places of the items mutants are made in: functions (free, in impls and traits, in
/// modules), constants and statics; nested ones too. `None` when `text` is not Rust syn reads.
fn places(text: &str) -> Option<Vec<Place>> {
    let file = syn::parse_file(text).ok()?;
    let mut out = Vec::new();
    walk(&file.items, &mut out);
    Some(out)
}

fn walk<'a>(items: impl IntoIterator<Item = &'a syn::Item>, out: &mut Vec<Place>) {
    for item in items {
        match item {
            syn::Item::Fn(f) => {
                out.push(Place::of(f.span()));
                nested(&f.block, out);
            }
            syn::Item::Const(_) | syn::Item::Static(_) => out.push(Place::of(item.span())),
            syn::Item::Impl(imp) => {
                for member in &imp.items {
                    match member {
                        syn::ImplItem::Fn(f) => {
                            out.push(Place::of(f.span()));
                            nested(&f.block, out);
                        }
                        syn::ImplItem::Const(c) => out.push(Place::of(c.span())),
                        _ => {}
                    }
                }
            }
            syn::Item::Trait(t) => {
                for member in &t.items {
                    if let syn::TraitItem::Fn(f) = member
                        && let Some(block) = &f.default
                    {
                        out.push(Place::of(f.span()));
                        nested(block, out);
                    }
                }
            }
            syn::Item::Mod(m) => {
                if let Some((_, content)) = &m.content {
                    walk(content, out);
                }
            }
            _ => {}
        }
    }
}

/// Items declared inside a function's body.
fn nested(block: &syn::Block, out: &mut Vec<Place>) {
    walk(
        block.stmts.iter().filter_map(|s| match s {
            syn::Stmt::Item(item) => Some(item),
            _ => None,
        }),
        out,
    );
}

/// The innermost item of `places` holding `line`.
fn innermost(places: &[Place], line: usize) -> Option<Place> {
    places.iter().copied().filter(|p| p.holds(line)).min_by_key(|p| p.last - p.first)
}

/// A mutant's name (`path:line:col: description`) in `new` (its file at a newer commit), when
/// the item it is made in in `old` is in `new` unchanged, and only once: the same name moved by
/// as many lines as its item moved. `None` when the item changed, went, or is there twice, or
/// when the mutant is in no item.
pub fn carried(name: &str, old: &Source, new: &Source) -> Option<String> {
    let mut parts = name.splitn(4, ':');
    let (path, line, col, description) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let line: usize = line.parse().ok()?;
    let item = innermost(&old.places, line)?;
    let lines = item.lines(&old.text);
    let mut same = new
        .places
        .iter()
        .copied()
        .filter(|p| p.last - p.first == item.last - item.first && p.lines(&new.text) == lines);
    let moved = same.next()?;
    if same.next().is_some() {
        return None;
    }
    let line = line - item.first + moved.first;
    Some(format!("{path}:{line}:{col}:{description}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "\
/// Doubles.
fn double(x: u32) -> u32 {
    x * 2
}

const LIMIT: u32 = 3 | 4;

struct S;

impl S {
    fn check(&self, x: u32) -> bool {
        x < LIMIT && x != 1
    }
}
";

    fn carried(name: &str, old: &str, new: &str) -> Option<String> {
        super::carried(name, &Source::parse(old.to_string())?, &Source::parse(new.to_string())?)
    }

    #[test]
    fn a_mutant_follows_its_unchanged_function_when_the_file_changes_above_it() {
        let new = OLD.replace("    x * 2\n", "    // Overflows past u32::MAX / 2.\n    x.wrapping_mul(2)\n");
        let name = "harness/src/x.rs:12:11: replace < with <= in S::check";
        assert_eq!(carried(name, OLD, &new).as_deref(), Some("harness/src/x.rs:13:11: replace < with <= in S::check"));
        // The changed function's mutants are not carried.
        assert_eq!(carried("harness/src/x.rs:3:7: replace * with + in double", OLD, &new), None);
        // A constant is an item too.
        assert_eq!(
            carried("harness/src/x.rs:6:22: replace | with &", OLD, &new).as_deref(),
            Some("harness/src/x.rs:7:22: replace | with &")
        );
        // The same file: every name stays.
        assert_eq!(carried(name, OLD, OLD).as_deref(), Some(name));
    }

    #[test]
    fn a_changed_doc_comment_a_duplicate_or_a_mutant_outside_any_item_carries_nothing() {
        let name = "harness/src/x.rs:3:7: replace * with + in double";
        assert_eq!(carried(name, OLD, &OLD.replace("/// Doubles.", "/// Twice x.")), None);
        let twice = format!("{OLD}\nmod again {{\n/// Doubles.\nfn double(x: u32) -> u32 {{\n    x * 2\n}}\n}}\n");
        assert_eq!(carried(name, OLD, &twice), None, "which of the two is it?");
        assert_eq!(carried("harness/src/x.rs:8:1: delete struct S", OLD, OLD), None);
        assert_eq!(carried(name, OLD, "fn ("), None, "a file that does not parse");
        assert_eq!(carried("no place", OLD, OLD), None);
    }

    #[test]
    fn a_nested_function_is_its_own_item() {
        let text = "fn outer() -> u32 {\n    fn inner() -> u32 {\n        1 + 1\n    }\n    inner() * 2\n}\n";
        let places = places(text).expect("parses");
        assert_eq!(innermost(&places, 3), Some(Place { first: 2, last: 4 }));
        assert_eq!(innermost(&places, 5), Some(Place { first: 1, last: 6 }));
    }
}
