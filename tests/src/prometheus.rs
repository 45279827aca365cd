//! A reader of the Prometheus / OpenMetrics text exposition, for tests that
//! check `/metrics` by value rather than by string search: every sample
//! with its metric name, labels (escapes undone) and value, and each
//! family's declared type. (`prometheus-parse` would add a second
//! `itertools` to the tree.)

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → `counter`, `gauge`, `histogram`...
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses the text; panics with the line on anything malformed, since
    /// a malformed exposition is a failure of the code under test.
    pub fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                    panic!("bad TYPE line: {line}");
                };
                out.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples.push(sample(line));
        }
        out
    }

    /// The value of the one sample with this name and these labels (among
    /// possibly more labels); panics when there is none or several.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }
}

fn sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("bad sample line: {line}"),
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end = loop {
            // name="value" pairs separated by commas, until `}`.
            let Some(&(start, c)) = chars.peek() else {
                panic!("unterminated labels: {line}");
            };
            if c == '}' {
                break start;
            }
            if c == ',' {
                chars.next();
                continue;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => panic!("bad escape: {line}"),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value: {line}"),
                }
            }
            labels.insert(key.trim().to_owned(), value);
        };
        &body[end + 1..]
    } else {
        rest
    };
    let value = rest
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v}: {line}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_families_labels_and_values() {
        let e = Exposition::parse(
            "# HELP x_total Help.\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\n\
             h_bucket{le=\"+Inf\"} 2\nplain 1.5e3\n# EOF\n",
        );
        assert_eq!(e.types["x"], "counter");
        assert_eq!(e.value("x_total", &[("b", "q\"uote")]), 3.0);
        assert_eq!(e.value("h_bucket", &[("le", "+Inf")]), 2.0);
        assert_eq!(e.value("plain", &[]), 1500.0);
    }
}
