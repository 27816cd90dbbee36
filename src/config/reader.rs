//! A span-keeping reader over a parsed TOML document. serde stops at the first error and
//! loses positions; an operator fixing a config wants every problem at once, each with the
//! line and column to look at. So the schema walk reads values through this type, which
//! records a [`Problem`] for each wrong value and each unknown key, and keeps going.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use toml_edit::{Item, TableLike};

/// One thing wrong with a config, located by byte span in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Range<usize>,
    pub message: String,
}

/// Every problem found in one config file, printable as `FILE:LINE:COL: message` lines.
#[derive(Debug, Clone)]
pub struct Problems {
    pub file: String,
    pub source: String,
    pub list: Vec<Problem>,
}

impl Problems {
    /// Line and column (both from 1) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.source[..offset.min(self.source.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

impl Problems {
    /// Each problem as one `FILE:LINE:COL: message` line, without the newline.
    pub fn lines(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|p| {
                let (line, col) = self.line_col(p.span.start);
                format!("{}:{line}:{col}: {}", self.file, p.message)
            })
            .collect()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A value with the span it was read from, so later checks can point at it.
#[derive(Debug, Clone)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// Collects problems while the schema walk reads tables.
#[derive(Default)]
pub struct Reader {
    pub problems: Vec<Problem>,
    /// Worth telling the operator, but no reason to refuse the config.
    pub warnings: Vec<Problem>,
}

/// One table being read: remembers which keys the schema asked for, so the rest can be
/// reported as unknown when the walk is done with it.
pub struct Table<'a> {
    pub name: String,
    inner: &'a dyn TableLike,
    pub span: Range<usize>,
    known: Vec<&'static str>,
}

impl Reader {
    pub fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            span,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.warnings.push(Problem {
            span,
            message: format!("warning: {}", message.into()),
        });
    }

    /// Wraps a table-like item; `name` is how messages refer to it (`[dhcp4]`).
    pub fn table<'a>(
        &mut self,
        name: &str,
        item: &'a Item,
        fallback: Range<usize>,
    ) -> Option<Table<'a>> {
        let span = item.span().unwrap_or(fallback);
        match item.as_table_like() {
            Some(inner) => Some(Table {
                name: name.to_string(),
                inner,
                span,
                known: Vec::new(),
            }),
            None => {
                self.problem(
                    span,
                    format!("{name} must be a table, found {}", item.type_name()),
                );
                None
            }
        }
    }

    /// A sub-table of `t`, if present.
    pub fn sub<'a>(&mut self, t: &mut Table<'a>, key: &'static str) -> Option<Table<'a>> {
        let (k, item) = t.take(key)?;
        let name = if t.name.is_empty() {
            format!("[{key}]")
        } else {
            format!("{}.{key}", t.name)
        };
        self.table(&name, item, k)
    }

    /// The tables of an array of tables (`[[menu.item]]`), each with its own span.
    pub fn tables<'a>(&mut self, t: &mut Table<'a>, key: &'static str) -> Vec<Table<'a>> {
        let Some((span, item)) = t.take(key) else {
            return Vec::new();
        };
        let name = format!(
            "[[{}{key}]]",
            if t.name.is_empty() {
                String::new()
            } else {
                format!("{}.", t.name.trim_matches(['[', ']']))
            }
        );
        match item.as_array_of_tables() {
            Some(arr) => arr
                .iter()
                .map(|tbl| Table {
                    name: name.clone(),
                    inner: tbl,
                    span: tbl.span().unwrap_or(span.clone()),
                    known: Vec::new(),
                })
                .collect(),
            None => {
                self.problem(span, format!("{key} must be an array of tables ({name})"));
                Vec::new()
            }
        }
    }

    pub fn string(&mut self, t: &mut Table, key: &'static str) -> Option<Spanned<String>> {
        let (span, item) = t.take(key)?;
        match item.as_str() {
            Some(s) => Some(Spanned {
                value: s.to_string(),
                span,
            }),
            None => {
                self.problem(
                    span,
                    format!(
                        "{} must be a string, found {}",
                        t.key_name(key),
                        item.type_name()
                    ),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, t: &mut Table, key: &'static str) -> Option<bool> {
        let (span, item) = t.take(key)?;
        let b = item.as_bool();
        if b.is_none() {
            self.problem(
                span,
                format!(
                    "{} must be true or false, found {}",
                    t.key_name(key),
                    item.type_name()
                ),
            );
        }
        b
    }

    /// An integer within `range`, reported with the key's name when it is not.
    pub fn int(
        &mut self,
        t: &mut Table,
        key: &'static str,
        range: Range<i64>,
    ) -> Option<Spanned<i64>> {
        let (span, item) = t.take(key)?;
        match item.as_integer() {
            Some(n) if range.contains(&n) => Some(Spanned { value: n, span }),
            Some(n) => {
                self.problem(
                    span,
                    format!(
                        "{} = {n} is out of range {}..={}",
                        t.key_name(key),
                        range.start,
                        range.end - 1
                    ),
                );
                None
            }
            None => {
                self.problem(
                    span,
                    format!(
                        "{} must be an integer, found {}",
                        t.key_name(key),
                        item.type_name()
                    ),
                );
                None
            }
        }
    }

    /// A string parsed with `FromStr`; `what` names the expected form ("an IPv4 address").
    pub fn parsed<T: FromStr>(
        &mut self,
        t: &mut Table,
        key: &'static str,
        what: &str,
    ) -> Option<Spanned<T>> {
        let s = self.string(t, key)?;
        self.parse_str(&t.key_name(key), s, what)
    }

    fn parse_str<T: FromStr>(
        &mut self,
        name: &str,
        s: Spanned<String>,
        what: &str,
    ) -> Option<Spanned<T>> {
        match s.value.parse() {
            Ok(v) => Some(Spanned {
                value: v,
                span: s.span,
            }),
            Err(_) => {
                self.problem(s.span, format!("{name}: `{}` is not {what}", s.value));
                None
            }
        }
    }

    /// An array of strings, each parsed with `FromStr`. Bad elements are reported one by one.
    pub fn parsed_list<T: FromStr>(
        &mut self,
        t: &mut Table,
        key: &'static str,
        what: &str,
    ) -> Option<Spanned<Vec<Spanned<T>>>> {
        let (span, item) = t.take(key)?;
        let name = t.key_name(key);
        let Some(arr) = item.as_array() else {
            self.problem(
                span,
                format!(
                    "{name} must be an array of strings, found {}",
                    item.type_name()
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for v in arr.iter() {
            let vspan = v.span().unwrap_or(span.clone());
            match v.as_str() {
                Some(s) => {
                    if let Some(p) = self.parse_str(
                        &name,
                        Spanned {
                            value: s.to_string(),
                            span: vspan,
                        },
                        what,
                    ) {
                        out.push(p);
                    }
                }
                None => self.problem(
                    vspan,
                    format!("{name}: elements must be strings, found {}", v.type_name()),
                ),
            }
        }
        Some(Spanned { value: out, span })
    }

    /// Reports every key of `t` that the schema did not ask for.
    pub fn finish(&mut self, t: Table) {
        for (key, _) in t.inner.iter() {
            if !t.known.contains(&key) {
                let span = t
                    .inner
                    .key(key)
                    .and_then(|k| k.span())
                    .unwrap_or(t.span.clone());
                let known = t.known.join(", ");
                self.problem(
                    span,
                    format!(
                        "unknown key `{key}` in {} (known keys: {known})",
                        t.display()
                    ),
                );
            }
        }
    }
}

impl<'a> Table<'a> {
    /// Marks `key` as part of the schema and returns its span and item when present.
    fn take(&mut self, key: &'static str) -> Option<(Range<usize>, &'a Item)> {
        self.known.push(key);
        let (k, item) = self.inner.get_key_value(key)?;
        let span = item
            .span()
            .or_else(|| k.span())
            .unwrap_or(self.span.clone());
        Some((span, item))
    }

    /// Marks `key` as known without reading it (for keys another table reads).
    pub fn has(&mut self, key: &'static str) -> bool {
        self.known.push(key);
        self.inner.contains_key(key)
    }

    fn display(&self) -> String {
        if self.name.is_empty() {
            "the top level".into()
        } else {
            self.name.clone()
        }
    }

    fn key_name(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name.trim_matches(['[', ']']))
        }
    }
}
